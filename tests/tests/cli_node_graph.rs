//! `zerosmq node list|info` and `zerosmq graph --watch` against a real master and real nodes.

mod cli_support;

use cli_support::*;

#[test]
fn node_list_and_info() {
    let master = start_master();
    let talker = node(&master, "talker");
    let listener = node(&master, "listener");
    let _p = talker.advertise("chatter").unwrap();
    let _p2 = talker.advertise("status").unwrap();
    let _s = listener.subscribe("chatter").unwrap();

    let out = run_ok(zerosmq(&master).args(["node", "list"]));
    assert_eq!(out.stdout, "listener\ntalker\n");

    let out = run_ok(zerosmq(&master).args(["node", "info", "talker"]));
    assert_eq!(
        out.stdout,
        "Node: talker\nPublications:\n * chatter\n * status\nSubscriptions: none\n"
    );
    let out = run_ok(zerosmq(&master).args(["node", "info", "listener"]));
    assert_eq!(
        out.stdout,
        "Node: listener\nPublications: none\nSubscriptions:\n * chatter\n"
    );

    let out = run(zerosmq(&master).args(["node", "info", "ghost"]), WAIT);
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("unknown node 'ghost' (nodes: listener, talker)"),
        "{}",
        out.stderr
    );
}

#[test]
fn graph_watch_prints_the_graph_again_when_it_changes() {
    let master = start_master();
    let talker = node(&master, "talker");
    let _p = talker.advertise("chatter").unwrap();
    let mut watch = spawn(zerosmq(&master).args(["graph", "--watch", "--interval", "0.1"]));
    // The first picture: ends with the closing brace.
    let mut first = Vec::new();
    loop {
        let line = watch.next_stdout();
        first.push(line.clone());
        if line.trim() == "}" {
            break;
        }
    }
    assert!(first[0].starts_with("digraph"), "{first:#?}");
    assert!(first.iter().any(|l| l.contains("talker")), "{first:#?}");
    assert!(!first.iter().any(|l| l.contains("newcomer")), "{first:#?}");

    let newcomer = node(&master, "newcomer");
    let _s = newcomer.subscribe("chatter").unwrap();
    let line = watch.wait_stdout(|l| l.contains("newcomer"));
    assert!(line.contains("newcomer"));
    watch.interrupt();
    let (status, _, err) = watch.finish();
    assert!(status.success(), "{err:#?}");
}

#[test]
fn graph_watch_rewrites_the_picture() {
    if std::process::Command::new("dot")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("skipped: Graphviz 'dot' is not installed (scripts/test.sh installs it)");
        return;
    }
    let master = start_master();
    let dir = temp_dir("graph-watch");
    let svg = dir.join("graph.svg");
    let talker = node(&master, "talker");
    let _p = talker.advertise("chatter").unwrap();
    let mut watch = spawn(
        zerosmq(&master)
            .args(["graph", "--watch", "--quiet", "--interval", "0.1", "-o"])
            .arg(&svg),
    );
    watch.wait_stderr("wrote");
    assert!(!std::fs::read_to_string(&svg).unwrap().contains("newcomer"));
    let newcomer = node(&master, "newcomer");
    let _s = newcomer.subscribe("chatter").unwrap();
    watch.wait_stderr("wrote");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("newcomer"));
    watch.interrupt();
    let (status, out, _) = watch.finish();
    assert!(status.success());
    assert!(out.is_empty(), "--quiet prints no DOT: {out:#?}");
}
