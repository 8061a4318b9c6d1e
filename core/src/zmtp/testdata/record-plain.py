import socket, threading, time, zmq
ctx = zmq.Context()
# ZAP handler: alice/wonderland only
zap = ctx.socket(zmq.REP); zap.bind("inproc://zeromq.zap.01")
def zap_loop():
    while True:
        try: f = zap.recv_multipart()
        except zmq.ZMQError: return
        ok = f[6] == b"alice" and f[7] == b"wonderland"
        zap.send_multipart([b"1.0", f[1], b"200" if ok else b"400", b"OK" if ok else b"no", b"alice" if ok else b"", b""])
threading.Thread(target=zap_loop, daemon=True).start()

def ready_greeting(mech, server):
    g = bytearray(64); g[0]=0xff; g[9]=0x7f; g[10]=3; g[11]=1; g[12:12+len(mech)]=mech; g[32]=server; return bytes(g)

def cmd(name, data=b""):
    body = bytes([len(name)]) + name + data
    return bytes([0x04, len(body)]) + body

def hello(u, p): return cmd(b"HELLO", bytes([len(u)])+u+bytes([len(p)])+p)
def meta(name, st, ident=None):
    d = bytes([11])+b"Socket-Type"+len(st).to_bytes(4,"big")+st
    if ident is not None: d += bytes([8])+b"Identity"+len(ident).to_bytes(4,"big")+ident
    return cmd(name, d)

def recv_n(s, n):
    b=b""
    while len(b)<n:
        c=s.recv(n-len(b))
        if not c: break
        b+=c
    return b

def server_stream(kind, sock_type, st, password):
    srv = ctx.socket(kind); srv.plain_server = True; srv.zap_domain = b"test"
    port = srv.bind_to_random_port("tcp://127.0.0.1")
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(2)
    s.sendall(ready_greeting(b"PLAIN", 0))
    out = recv_n(s, 64)
    s.sendall(hello(b"alice", password))
    time.sleep(0.3)
    try:
        out += s.recv(1000)
    except Exception as e: print("timeout", e)
    if b"WELCOME" in out:
        s.sendall(meta(b"INITIATE", st, b"" if st==b"REQ" else None))
        time.sleep(0.3)
        out += s.recv(1000)
    try:
        more = s.recv(1000); print("after:", more)
    except Exception as e: print("after exc", e)
    s.close(); srv.close()
    return out

ok = server_stream(zmq.XPUB, "xpub", b"SUB", b"wonderland")
print(ok)
open("libzmq-plain-xpub.bin","wb").write(ok)
bad = server_stream(zmq.XPUB, "xpub", b"SUB", b"guess")
print(bad)
open("libzmq-plain-xpub-refused.bin","wb").write(bad)

# libzmq PLAIN client bytes: a REQ client against a raw server
ls = socket.socket(); ls.bind(("127.0.0.1",0)); ls.listen(1)
cl = ctx.socket(zmq.REQ); cl.plain_username=b"alice"; cl.plain_password=b"wonderland"
cl.connect("tcp://127.0.0.1:%d" % ls.getsockname()[1])
c,_ = ls.accept(); c.settimeout(2)
c.sendall(ready_greeting(b"PLAIN", 1))
got = recv_n(c, 64)
got += recv_n(c, 2); got += recv_n(c, got[-1])
c.sendall(cmd(b"WELCOME"))
got += recv_n(c, 2); got += recv_n(c, got[-1])
print(got)
open("libzmq-plain-req-client.bin","wb").write(got)
