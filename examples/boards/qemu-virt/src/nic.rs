//! The virtio-net card as a smoltcp `Device`: `virtio-drivers`' raw driver (no alloc) over the
//! MMIO transport, its virtqueues in a static DMA pool, received frames in buffers the caller
//! lends. Memory is identity-mapped (no MMU), so physical and virtual addresses are the same.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, PhysAddr, PAGE_SIZE};

use crate::board;

/// Descriptors per virtqueue; also the number of receive buffers kept posted.
const QUEUE: usize = 16;
pub const RX_BUFFERS: usize = QUEUE;
/// An Ethernet frame (1514) and the virtio-net header (12).
pub const RX_BUFFER_LEN: usize = 1536;
const MTU: usize = 1514;
/// Pages of the DMA pool: each of the two virtqueues takes two.
const DMA_PAGES: usize = 8;

#[repr(C, align(4096))]
struct DmaPool(UnsafeCell<[u8; DMA_PAGES * PAGE_SIZE]>);

// SAFETY: one hart and no interrupt handlers; the pool's pages are handed out once each
// (`NEXT_PAGE` only grows) and then belong to the device and the driver.
unsafe impl Sync for DmaPool {}

static DMA: DmaPool = DmaPool(UnsafeCell::new([0; DMA_PAGES * PAGE_SIZE]));
static NEXT_PAGE: AtomicUsize = AtomicUsize::new(0);

/// The DMA `Hal` of virtio-drivers: a bump allocator over a static pool (the queues are made
/// once and never freed), identity mapping for everything else.
pub struct Hal;

// SAFETY: `dma_alloc` returns zeroed, page-aligned, never-reused pages of a static that lives
// for the whole program, with `paddr == vaddr` (no MMU); `mmio_phys_to_virt` and `share`
// are identity maps, which is how QEMU virt's memory looks to a bare-metal program.
unsafe impl virtio_drivers::Hal for Hal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let first = NEXT_PAGE.load(Ordering::Relaxed);
        if first + pages > DMA_PAGES {
            // virtio-drivers turns a zero address into `Error::DmaError`.
            return (0, NonNull::dangling());
        }
        NEXT_PAGE.store(first + pages, Ordering::Relaxed);
        let base = DMA.0.get().cast::<u8>();
        // SAFETY: `first + pages <= DMA_PAGES`, so the offset stays inside the pool.
        let vaddr = unsafe { base.add(first * PAGE_SIZE) };
        // The pool is a zero-initialised static and these pages were never handed out.
        let vaddr = NonNull::new(vaddr).unwrap_or(NonNull::dangling());
        (vaddr.as_ptr() as PhysAddr, vaddr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // The queues live as long as the program; nothing is returned to the pool.
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as usize as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.cast::<u8>().as_ptr() as usize as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

type Net = VirtIONetRaw<Hal, MmioTransport<'static>, QUEUE>;

/// Why the card could not be started.
#[derive(Debug)]
pub enum NicError {
    /// No virtio-mmio slot holds a network device (is `-device virtio-net-device` given?).
    NotFound,
    /// The driver refused the device.
    Driver(virtio_drivers::Error),
}

impl core::fmt::Display for NicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NicError::NotFound => f.write_str("no virtio-net device on the MMIO bus"),
            NicError::Driver(e) => write!(f, "driver: {e}"),
        }
    }
}

/// The network card; `rx` are the buffers the device receives frames into.
pub struct Nic<'a> {
    net: Net,
    irq: u32,
    rx: &'a mut [[u8; RX_BUFFER_LEN]; RX_BUFFERS],
    /// The virtqueue token of each posted receive buffer.
    posted: [Option<u16>; RX_BUFFERS],
    /// The buffer lent to smoltcp by the last `receive`, to post again on the next call.
    lent: Option<usize>,
    tx: [u8; MTU],
}

impl<'a> Nic<'a> {
    /// Finds the virtio-net device on the MMIO bus and starts it; `rx` must stay where it is
    /// while the device runs, hence the borrow.
    pub fn probe(rx: &'a mut [[u8; RX_BUFFER_LEN]; RX_BUFFERS]) -> Result<Self, NicError> {
        for slot in 0..board::VIRTIO_MMIO_SLOTS {
            let addr = board::VIRTIO_MMIO_BASE + slot * board::VIRTIO_MMIO_SIZE;
            let Some(header) = NonNull::new(addr as *mut VirtIOHeader) else {
                continue;
            };
            // SAFETY: QEMU virt maps a virtio-mmio region of VIRTIO_MMIO_SIZE bytes at each
            // slot address, for the whole run; each slot is opened at most once here (the
            // loop returns with the first network device).
            let Ok(transport) = (unsafe { MmioTransport::new(header, board::VIRTIO_MMIO_SIZE) })
            else {
                continue;
            };
            if transport.device_type() != DeviceType::Network {
                continue;
            }
            let net = Net::new(transport).map_err(NicError::Driver)?;
            let irq = slot as u32 + 1;
            board::enable_wake_on_irq(irq);
            let mut nic = Nic {
                net,
                irq,
                rx,
                posted: [None; RX_BUFFERS],
                lent: None,
                tx: [0; MTU],
            };
            for i in 0..RX_BUFFERS {
                nic.post(i).map_err(NicError::Driver)?;
            }
            return Ok(nic);
        }
        Err(NicError::NotFound)
    }

    /// The card's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.net.mac_address()
    }

    fn post(&mut self, i: usize) -> Result<(), virtio_drivers::Error> {
        // SAFETY: `rx[i]` is borrowed for 'a, longer than the device runs, and is not touched
        // again until `receive` sees its token completed and calls `receive_complete`.
        let token = unsafe { self.net.receive_begin(&mut self.rx[i])? };
        self.posted[i] = Some(token);
        Ok(())
    }

    /// Posts again the buffer smoltcp read last (its token has been consumed by now).
    fn repost_lent(&mut self) {
        if let Some(i) = self.lent.take() {
            // The queue has room: the buffer's descriptor was freed when it completed.
            let _ = self.post(i);
        }
    }

    /// Sleeps until a frame arrives or `until_us`, then acknowledges the card's interrupt.
    pub fn sleep_until(&mut self, until_us: u64) {
        if self.net.poll_receive().is_some() {
            return;
        }
        board::sleep_until(until_us);
        if let Some(irq) = board::claim_irq() {
            if irq == self.irq {
                self.net.ack_interrupt();
            }
            board::complete_irq(irq);
        }
    }
}

pub struct RxToken<'b> {
    frame: &'b [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

pub struct TxToken<'b> {
    net: &'b mut Net,
    buf: &'b mut [u8; MTU],
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let frame = &mut self.buf[..len.min(MTU)];
        let r = f(frame);
        // Blocks until the device has taken the frame (QEMU does so at once); a failure is a
        // lost frame, which TCP retransmits.
        let _ = self.net.send(frame);
        r
    }
}

impl phy::Device for Nic<'_> {
    type RxToken<'b>
        = RxToken<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = TxToken<'b>
    where
        Self: 'b;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        self.repost_lent();
        let token = self.net.poll_receive()?;
        let i = self.posted.iter().position(|t| *t == Some(token))?;
        self.posted[i] = None;
        // Posted again on the next call, whether or not this frame is good.
        self.lent = Some(i);
        // SAFETY: `rx[i]` is the buffer posted with this token.
        let (hdr, len) = unsafe { self.net.receive_complete(token, &mut self.rx[i]) }.ok()?;
        let frame = self.rx[i].get(hdr..hdr + len)?;
        Some((
            RxToken { frame },
            TxToken {
                net: &mut self.net,
                buf: &mut self.tx,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        self.repost_lent();
        Some(TxToken {
            net: &mut self.net,
            buf: &mut self.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(1);
        caps
    }
}
