//! Networks: real bridges and veths, names that resolve, static addresses,
//! connect and disconnect while running, and no leftovers.

use crate::util::*;

fn links() -> String {
    String::from_utf8_lossy(&std::process::Command::new("ip").args(["-o", "link", "show"]).output().unwrap().stdout).into_owned()
}

#[test]
fn containers_reach_each_other_by_name_and_alias() {
    let env = Env::new("containers_reach_each_other_by_name_and_alias");
    let net = env.name("n");
    let id = env.ok(&["network", "create", "--subnet=192.168.213.0/24", &net]);
    let bridge = format!("br-{}", &id[..12]);
    assert!(links().contains(&bridge), "the bridge exists");
    let web = env.name("web");
    env.run_detached(&web, &["--network", &net, "--network-alias", "www", "busybox", "httpd", "-f", "-p", "80"]);
    let o = env.berth(&["run", "--rm", "--network", &net, "busybox", "sh", "-c", &format!("ping -c 1 -W 2 {web} >/dev/null && ping -c 1 -W 2 www >/dev/null && echo both")]);
    assert_eq!((o.code, o.out()), (0, "both"), "{o}");
    let o = env.berth(&["run", "--rm", "--network", &net, "busybox", "sh", "-c", &format!("echo hello > /tmp/x; wget -q -O- http://{web}/ 2>&1; echo code=$?")]);
    assert!(o.stdout.contains("code="), "{o}");
    let insp = env.ok(&["network", "inspect", &net]);
    assert!(insp.contains("192.168.213.0/24") && insp.contains(&web), "{insp}");
    // Refused while attached.
    let o = env.berth(&["network", "rm", &net]);
    assert_ne!(o.code, 0, "{o}");
    assert!(o.stderr.contains("active endpoints"), "{o}");
    let veth = format!("vb{}", &env.full_id(&web)[..10]);
    assert!(links().contains(&veth), "the container's veth is on the host");
    env.ok(&["rm", "-f", &web]);
    env.ok(&["network", "rm", &net]);
    assert!(!links().contains(&bridge), "the bridge is gone: {}", links());
    assert!(!links().contains(&veth), "no veth left: {}", links());
}

#[test]
fn static_ip_is_checked_and_used() {
    let env = Env::new("static_ip_is_checked_and_used");
    let net = env.name("s");
    env.ok(&["network", "create", "--subnet", "10.213.7.0/24", &net]);
    let o = env.berth(&["run", "--rm", "--network", &net, "--ip", "10.213.7.44", "busybox", "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(o.stdout.contains("10.213.7.44/24"), "{o}");
    let o = env.berth(&["run", "--rm", "--network", &net, "--ip", "10.99.0.4", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("not in subnet"), "{o}");
    let a = env.name("a");
    env.run_detached(&a, &["--network", &net, "--ip", "10.213.7.9", "busybox", "sleep", "60"]);
    let o = env.berth(&["run", "--rm", "--network", &net, "--ip", "10.213.7.9", "busybox", "true"]);
    assert_eq!(o.code, 125, "an address in use is refused: {o}");
    assert!(o.stderr.contains("already in use"), "{o}");
}

#[test]
fn connect_and_disconnect_while_running() {
    let env = Env::new("connect_and_disconnect_while_running");
    let n1 = env.name("one");
    let n2 = env.name("two");
    env.ok(&["network", "create", &n1]);
    env.ok(&["network", "create", "--subnet", "10.214.9.0/24", &n2]);
    let a = env.name("a");
    let b = env.name("b");
    env.run_detached(&a, &["--network", &n1, "busybox", "sleep", "120"]);
    env.run_detached(&b, &["--network", &n2, "busybox", "sleep", "120"]);
    let ping = |from: &str, to: &str| env.berth(&["exec", from, "ping", "-c", "1", "-W", "1", to]).code;
    assert_ne!(ping(&a, &b), 0, "different networks: no name, no route");
    env.ok(&["network", "connect", "--ip", "10.214.9.77", &n2, &a]);
    let o = env.berth(&["exec", &a, "ip", "-4", "-o", "addr"]);
    assert!(o.stdout.contains("eth1") && o.stdout.contains("10.214.9.77"), "{o}");
    assert_eq!(ping(&a, &b), 0, "after connect the name resolves and answers");
    assert_eq!(ping(&b, &a), 0, "and the other way round");
    env.ok(&["network", "disconnect", &n2, &a]);
    assert_ne!(ping(&a, &b), 0, "after disconnect it is gone again");
    let hosts = env.berth(&["exec", &b, "cat", "/etc/hosts"]).stdout;
    assert!(!hosts.contains(&a), "names follow disconnect: {hosts}");
}

#[test]
fn none_and_host_networks() {
    let env = Env::new("none_and_host_networks");
    let o = env.berth(&["run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net"]);
    assert_eq!(o.out(), "lo", "--network none has only loopback: {o}");
    // A link the test made in the host's namespace (a VM may have no other).
    let net = env.name("h");
    let id = env.ok(&["network", "create", &net]);
    let bridge = format!("br-{}", &id.trim()[..12]);
    let o = env.berth(&["run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net"]);
    assert!(o.stdout.lines().any(|l| l == bridge), "--network host sees the host's links, {bridge} among them: {o}");
}

#[test]
fn networks_from_a_script() {
    let env = Env::new("networks_from_a_script");
    let f = env.dir.join("net.rhai");
    let p = env.name("r");
    std::fs::write(
        &f,
        format!(
            r#"
let n = network("{p}net", #{{ subnet: "192.168.214.0/24" }});
assert_eq(n.subnet, "192.168.214.0/24");
assert_eq(n.gateway, "192.168.214.1");
let same = network("{p}net");
assert_eq(same.id, n.id);
let a = run("busybox", #{{ name: "{p}a", network: "{p}net", ip: "192.168.214.10", cmd: ["sleep", "60"] }});
let b = run("busybox", #{{ name: "{p}b", network: "{p}net", cmd: ["sleep", "60"] }});
assert_eq(a.ip, "192.168.214.10");
assert_eq(a.ips["{p}net"], "192.168.214.10");
assert_eq(b.exec(["ping", "-c", "1", "-W", "1", "{p}a"]).code, 0);
assert_eq(n.containers().len(), 2);
a.remove(#{{ force: true }});
b.remove(#{{ force: true }});
n.remove();
print("net ok");
"#
        ),
    )
    .unwrap();
    let o = env.berth(&["run", f.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("net ok"), "{o}");
}

#[test]
fn default_network_and_prune() {
    let env = Env::new("default_network_and_prune");
    let o = env.berth(&["run", "--rm", "busybox", "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert_eq!(o.code, 0, "without --network a container joins the default network: {o}");
    let nets = env.ok(&["network", "ls"]);
    assert!(nets.lines().any(|l| l.split_whitespace().nth(1) == Some("bridge")), "{nets}");
    let n1 = env.name("p1");
    let n2 = env.name("p2");
    env.ok(&["network", "create", &n1]);
    env.ok(&["network", "create", &n2]);
    let s1 = env.inspect_network_subnet(&n1);
    let s2 = env.inspect_network_subnet(&n2);
    assert_ne!(s1, s2, "chosen subnets differ");
    let keep = env.name("keep");
    env.run_detached(&keep, &["--network", &n1, "busybox", "sleep", "60"]);
    // As docker: it asks, and an answer other than y leaves everything.
    let o = env.berth_stdin(&["network", "prune"], b"n\n");
    assert!(o.code == 0 && o.stdout.contains("Are you sure you want to continue? [y/N]"), "{o}");
    assert!(env.ok(&["network", "ls"]).contains(&n2), "nothing removed without a yes");
    let o = env.berth_stdin(&["network", "prune"], b"y\n");
    assert_eq!(o.code, 0, "{o}");
    let left = env.ok(&["network", "ls"]);
    assert!(left.contains(&n1), "a network in use stays: {left}");
    let names: Vec<&str> = left.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert!(!names.contains(&n2.as_str()), "unused ones go: {left}");
    assert!(names.contains(&"bridge"), "the default network is never pruned, as docker's: {left}");
    let o = env.berth(&["network", "rm", "bridge"]);
    assert!(o.code != 0 && o.stderr.contains("bridge is a pre-defined network and cannot be removed") && o.stderr.contains("system reset"), "{o}");
    assert!(env.ok(&["network", "ls"]).contains("bridge"));
    // system reset takes everything, the default network and running
    // containers too; a script can do the same.
    let o = env.berth_stdin(&["system", "reset"], b"n\n");
    assert!(o.code == 0 && env.ok(&["ps", "-q"]).trim().len() == 12, "asks first: {o}");
    let o = env.ok(&["system", "reset", "-f"]);
    assert!(o.contains("1 container(s), 2 network(s)"), "{o}");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert_eq!(env.ok(&["network", "ls", "-q"]), "", "no network left, the default one included");
    assert_eq!(env.ok(&["images", "-q"]), "");
    let f = env.dir.join("reset.rhai");
    std::fs::write(&f, "network(\"n\"); run(\"busybox\", #{ name: \"c\", cmd: [\"sleep\", \"60\"] }).id;\nprint(system_reset());\n").unwrap();
    env.ok(&["image", "import", "-c", r#"CMD ["sh"]"#, busybox_tar().to_str().unwrap(), "busybox"]);
    let o = env.berth(&["run", f.to_str().unwrap()]);
    assert!(o.ok() && o.stdout.contains("\"containers\": 1") && o.stdout.contains("\"networks\": 2"), "{o}");
}

fn http_get(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = match std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), std::time::Duration::from_secs(3)) {
        Ok(s) => s,
        Err(e) => return format!("connect failed: {e}"),
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(3)));
    let _ = write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut b = String::new();
    let _ = s.read_to_string(&mut b);
    b
}

fn host_address() -> Option<String> {
    let out = String::from_utf8_lossy(&std::process::Command::new("ip").args(["-4", "-o", "addr", "show", "scope", "global"]).output().ok()?.stdout).into_owned();
    // The host's own interface, not one of berth's bridges.
    out.lines().find(|l| !l.contains(" br-") && !l.contains("berth")).and_then(|l| l.split_whitespace().nth(3)).map(|a| a.split('/').next().unwrap().to_string())
}

#[test]
fn published_tcp_port_reached_from_the_host_and_removed_with_the_container() {
    let env = Env::new("published_tcp_port_reached_from_the_host_and_removed_with_the_container");
    let web = env.name("pub");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let lport = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    env.run_detached(
        &web,
        &["-p", &format!("{port}:80"), "-p", &format!("127.0.0.1:{lport}:80"), "busybox", "sh", "-c", "mkdir /www && echo published-ok > /www/index.html && httpd -f -p 80 -h /www"],
    );
    let ports = env.ok(&["port", &web]);
    assert!(ports.contains(&format!("80/tcp -> 0.0.0.0:{port}")) && ports.contains(&format!("80/tcp -> 127.0.0.1:{lport}")), "{ports}");
    assert!(wait_until(std::time::Duration::from_secs(10), || http_get(&format!("127.0.0.1:{port}")).contains("published-ok")), "via loopback: {}", http_get(&format!("127.0.0.1:{port}")));
    assert!(http_get(&format!("127.0.0.1:{lport}")).contains("published-ok"), "bound to 127.0.0.1 only");
    if let Some(h) = host_address() {
        assert!(http_get(&format!("{h}:{port}")).contains("published-ok"), "via the host's own address {h}");
    }
    // Another container reaches it through the gateway address too.
    let gw = env.inspect(&web)["NetworkSettings"]["Networks"]["bridge"]["Gateway"].as_str().unwrap_or("").to_string();
    let o = env.berth(&["run", "--rm", "busybox", "wget", "-q", "-O-", &format!("http://{gw}:{port}/")]);
    assert!(o.stdout.contains("published-ok"), "from a container: {o}");
    env.ok(&["rm", "-f", &web]);
    assert!(!http_get(&format!("127.0.0.1:{port}")).contains("published-ok"), "rules gone with the container");
}

#[test]
fn ps_shows_ports_and_a_published_port_answers_from_another_network() {
    let env = Env::new("ps_shows_ports_and_a_published_port_answers_from_another_network");
    let web = env.name("pw");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let id = env.run_detached(
        &web,
        &["-p", &format!("{port}:80"), "-p", "80", "busybox", "sh", "-c", "mkdir /www && echo published-ok > /www/index.html && httpd -f -p 80 -h /www"],
    );
    // -p 80 picked a free host port; ps shows both as docker does.
    let mapped = env.ok(&["port", &web]);
    let eph: u16 = mapped.lines().filter_map(|l| l.rsplit_once(':')).map(|(_, p)| p.trim().parse().unwrap()).find(|p| *p != port).expect(&mapped);
    let ps = env.ok(&["ps", "-f", &format!("id={}", &id[..12])]);
    assert!(ps.contains(&format!("0.0.0.0:{port}->80/tcp")) && ps.contains(&format!("0.0.0.0:{eph}->80/tcp")), "{ps}");
    let js = env.ok(&["ps", "--format", "json", "-f", &format!("id={}", &id[..12])]);
    let j: serde_json::Value = serde_json::from_str(js.lines().next().unwrap()).unwrap();
    assert!(j["Ports"].as_str().unwrap().contains(&format!("0.0.0.0:{port}->80/tcp")), "{js}");
    assert!(wait_until(std::time::Duration::from_secs(10), || http_get(&format!("127.0.0.1:{eph}")).contains("published-ok")), "the mapped port answers");
    // From a container on another network, through that network's gateway.
    let net = env.name("other");
    env.ok(&["network", "create", &net]);
    let j: serde_json::Value = serde_json::from_str(&env.ok(&["network", "inspect", &net])).unwrap();
    let j = if j.is_array() { j[0].clone() } else { j };
    let gw = j["IPAM"]["Config"][0]["Gateway"].as_str().expect("a gateway in network inspect").to_string();
    let o = env.berth(&["run", "--rm", "--network", &net, "busybox", "wget", "-q", "-O-", &format!("http://{gw}:{port}/")]);
    assert!(o.stdout.contains("published-ok"), "from another network through its gateway: {o}");
    // Direct traffic between the networks is still dropped.
    let ip = env.inspect(&web)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"].as_str().unwrap().to_string();
    let o = env.berth(&["run", "--rm", "--network", &net, "busybox", "sh", "-c", &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 80")]);
    assert!(!o.stdout.contains("published-ok"), "networks stay isolated for direct traffic: {o}");
}

#[test]
fn bad_publish_specs_are_refused() {
    let env = Env::new("bad_publish_specs_are_refused");
    let o = env.berth(&["run", "--rm", "-p", "99999:80", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("invalid port spec"), "{o}");
    let o = env.berth(&["run", "--rm", "--network", "none", "-p", "8080:80", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("needs a bridge network"), "{o}");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn networks_are_isolated_through_the_host() {
    let env = Env::new("networks_are_isolated_through_the_host");
    let (na, nb) = (env.name("ia"), env.name("ib"));
    let ida = env.ok(&["network", "create", &na]);
    env.ok(&["network", "create", &nb]);
    let (a, b) = (env.name("a"), env.name("b"));
    env.run_detached(&a, &["--network", &na, "busybox", "sleep", "60"]);
    env.run_detached(&b, &["--network", &nb, "busybox", "sleep", "60"]);
    let ipb = env.inspect(&b)["NetworkSettings"]["Networks"][&nb]["IPAddress"].as_str().unwrap().to_string();
    let o = env.berth(&["exec", &a, "ping", "-c", "1", "-W", "1", &ipb]);
    assert_ne!(o.code, 0, "a container on one network cannot reach another network through the host: {o}");
    // The drop is ours, not a missing route: berth's rule counted it.
    let table = env.nft_table();
    let rules = String::from_utf8_lossy(&std::process::Command::new("nft").args(["list", "table", "ip", &table]).output().unwrap().stdout).into_owned();
    let line = rules.lines().find(|l| l.contains(&format!("iifname \"br-{}\"", &ida[..12])) && l.contains("drop")).unwrap_or("").to_string();
    assert!(line.contains("counter packets") && !line.contains("counter packets 0 "), "the isolation rule dropped it: {rules}");
    // They meet through a container attached to both.
    env.ok(&["network", "connect", &nb, &a]);
    assert_eq!(env.berth(&["exec", &a, "ping", "-c", "1", "-W", "2", &b]).code, 0, "once connected they talk");
}

/// A fake upstream host: its own network namespace with a documentation
/// address (198.51.100.0/24), wired to the host by a veth pair. Removed on
/// drop.
struct Upstream {
    ns: String,
    veth: String,
}

impl Upstream {
    fn new(tag: &str, octet: u8) -> Upstream {
        let ns = format!("bup{tag}");
        let veth = format!("vup{tag}");
        let ip = |args: &[&str]| {
            let o = std::process::Command::new("ip").args(args).output().unwrap();
            assert!(o.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        };
        let _ = std::process::Command::new("ip").args(["netns", "del", &ns]).status();
        ip(&["netns", "add", &ns]);
        let up = Upstream { ns: ns.clone(), veth: veth.clone() };
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
        ip(&["addr", "add", &format!("198.51.100.{}/30", octet), "dev", &veth]);
        ip(&["link", "set", &veth, "up"]);
        ip(&["-n", &ns, "addr", "add", &format!("198.51.100.{}/30", octet + 1), "dev", "eth0"]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        up
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", &self.veth]).status();
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

#[test]
fn egress_nat_reaches_an_upstream_host() {
    let env = Env::new("egress_nat_reaches_an_upstream_host");
    // The upstream knows no route back to container subnets: only
    // masquerading makes the reply find its way.
    let up = Upstream::new(&format!("{}", std::process::id() % 10000), 4);
    let www = env.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "upstream-ok\n").unwrap();
    let mut server = std::process::Command::new("ip")
        .args(["netns", "exec", &up.ns, "busybox", "httpd", "-f", "-p", "198.51.100.5:8080", "-h", www.to_str().unwrap()])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let o = env.berth(&["run", "--rm", "busybox", "wget", "-q", "-O-", "http://198.51.100.5:8080/"]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(o.stdout, "upstream-ok\n", "a container reaches the upstream host through the host's NAT: {o}");
}

#[test]
fn graph_draws_networks_containers_addresses_and_ports() {
    let env = Env::new("graph_draws_networks_containers_addresses_and_ports");
    let net = env.name("g");
    env.ok(&["network", "create", "--subnet", "10.215.3.0/24", &net]);
    let c = env.name("c");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    env.run_detached(&c, &["--network", &net, "--ip", "10.215.3.7", "-p", &format!("{port}:80"), "busybox", "sleep", "60"]);
    let dot = env.ok(&["network", "graph"]);
    assert!(dot.starts_with("graph berth {"), "{dot}");
    assert!(dot.contains(&format!("\"ctr:{c}\" -- \"net:{net}\" [label=\"10.215.3.7\"]")), "{dot}");
    assert!(dot.contains(&format!("0.0.0.0:{port}->80/tcp")), "{dot}");
    let mm = env.ok(&["network", "graph", "--format", "mermaid"]);
    assert!(mm.starts_with("graph LR") && mm.contains("10.215.3.7"), "{mm}");
    let svg = env.ok(&["network", "graph", "--format", "svg"]);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>") && svg.contains(&c) && svg.contains("10.215.3.0/24"), "{svg}");
    let o = env.berth(&["network", "graph", "--format", "png"]);
    assert_eq!(o.code, 125, "{o}");
}

#[test]
fn router_lab_joins_two_subnets() {
    let env = Env::new("router_lab_joins_two_subnets");
    let (n1, n2) = (env.name("l1"), env.name("l2"));
    env.ok(&["network", "create", "--subnet", "10.216.1.0/24", &n1]);
    env.ok(&["network", "create", "--subnet", "10.216.2.0/24", &n2]);
    let r = env.name("router");
    env.run_detached(&r, &["--network", &n1, "--ip", "10.216.1.254", "--sysctl", "net.ipv4.ip_forward=1", "busybox", "sleep", "120"]);
    env.ok(&["network", "connect", "--ip", "10.216.2.254", &n2, &r]);
    let (h1, h2) = (env.name("h1"), env.name("h2"));
    env.run_detached(&h1, &["--network", &n1, "--ip", "10.216.1.10", "--cap-add", "NET_ADMIN", "busybox", "sleep", "120"]);
    env.run_detached(&h2, &["--network", &n2, "--ip", "10.216.2.10", "--cap-add", "NET_ADMIN", "busybox", "sleep", "120"]);
    env.ok(&["exec", &h1, "ip", "route", "add", "10.216.2.0/24", "via", "10.216.1.254"]);
    env.ok(&["exec", &h2, "ip", "route", "add", "10.216.1.0/24", "via", "10.216.2.254"]);
    let o = env.berth(&["exec", &h1, "ping", "-c", "2", "-W", "2", "10.216.2.10"]);
    assert_eq!(o.code, 0, "h1 reaches h2 through the router: {o}");
    assert!(o.stdout.contains("ttl=63"), "one hop: the router forwarded it: {o}");
}

#[test]
fn names_follow_rename() {
    let env = Env::new("names_follow_rename");
    let net = env.name("rn");
    env.ok(&["network", "create", &net]);
    let (a, b, b2) = (env.name("a"), env.name("b"), env.name("b2"));
    env.run_detached(&a, &["--network", &net, "busybox", "sleep", "60"]);
    env.run_detached(&b, &["--network", &net, "busybox", "sleep", "60"]);
    env.ok(&["rename", &b, &b2]);
    assert_eq!(env.berth(&["exec", &a, "ping", "-c", "1", "-W", "1", &b2]).code, 0, "the new name resolves");
    assert_ne!(env.berth(&["exec", &a, "ping", "-c", "1", "-W", "1", &b]).code, 0, "the old one does not");
}

/// The average round trip of `count` pings from container `from` to `to`, in ms.
fn ping_avg(env: &Env, from: &str, to: &str, count: u32) -> f64 {
    let o = env.berth(&["exec", from, "ping", "-c", &count.to_string(), "-i", "0.2", "-W", "2", to]);
    let line = o.stdout.lines().find(|l| l.contains("min/avg/max")).unwrap_or_else(|| panic!("no round trips from {from} to {to}: {o}"));
    line.split('=').nth(1).unwrap().trim().split('/').nth(1).unwrap().parse().unwrap()
}

fn delay_lines_of(env: &Env) -> usize {
    pids_with_env("BERTH_ROOT", &env.root)
        .iter()
        .filter(|p| String::from_utf8_lossy(&std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default()).contains("delay-line"))
        .count()
}

#[test]
fn link_emulation_delays_drops_and_shapes_while_running() {
    let env = Env::new("link_emulation_delays_drops_and_shapes_while_running");
    let net = env.name("imp");
    env.ok(&["network", "create", &net]);
    let a = env.name("a");
    let b = env.name("b");
    env.run_detached(&a, &["--network", &net, "busybox", "httpd", "-f", "-p", "80", "-h", "/bin"]);
    env.run_detached(&b, &["--network", &net, "busybox", "sleep", "600"]);
    let base = ping_avg(&env, &b, &a, 3);
    assert!(base < 20.0, "an unimpaired bridge answers fast: {base} ms");

    // Delay: a's replies wait 60 ms (± 5) on their way out.
    env.ok(&["network", "impair", "--delay", "60ms", "--jitter", "5ms", &net, &a]);
    assert_eq!(env.ok(&["network", "impair", &net, &a]), "delay 60ms jitter 5ms");
    let insp = env.ok(&["network", "inspect", &net]);
    assert!(insp.contains("\"Impairment\": \"delay 60ms jitter 5ms\""), "{insp}");
    let slow = ping_avg(&env, &b, &a, 5);
    assert!((54.0..120.0).contains(&slow), "60 ms delay shows in the round trip: {slow} ms");
    // The path taken: netem in a's namespace, or one delay line.
    let q = qdiscs_in(env.pid(&a), "eth0");
    if impair_mechanism(&env) == "netem" {
        assert!(q.contains("netem") && q.contains("delay 60ms"), "netem on a's eth0: {q}");
        assert_eq!(delay_lines_of(&env), 0);
    } else {
        assert!(!q.contains("netem"), "{q}");
        assert_eq!(delay_lines_of(&env), 1);
    }
    // TCP crosses the delay line whole (checksum offload and GSO frames).
    let o = env.berth(&["exec", &b, "sh", "-c", &format!("wget -q -O /tmp/bb http://{a}/busybox && md5sum /tmp/bb /bin/busybox")]);
    let sums: Vec<&str> = o.stdout.lines().map(|l| l.split_whitespace().next().unwrap_or("")).collect();
    assert!(o.ok() && sums.len() == 2 && sums[0] == sums[1], "a 2 MB download through the delay line arrives intact: {o}");

    // Loss: everything a sends is dropped, silently.
    env.ok(&["network", "impair", "--loss", "100", &net, &a]);
    let o = env.berth(&["exec", &b, "ping", "-c", "2", "-W", "1", &a]);
    assert!(o.stdout.contains("100% packet loss"), "{o}");
    env.ok(&["network", "impair", "--loss", "50", &net, &a]);
    let o = env.berth(&["exec", &b, "ping", "-c", "40", "-i", "0.05", "-W", "1", &a]);
    let lost: u32 = o.stdout.lines().flat_map(|l| l.split(", ")).find(|s| s.ends_with("packet loss")).and_then(|s| s.split('%').next()).and_then(|s| s.parse().ok()).unwrap_or(999);
    assert!((15..=85).contains(&lost), "about half the replies are lost: {lost}% {o}");

    // Rate: 2 MB at 8 mbit/s takes about two seconds.
    env.ok(&["network", "impair", "--rate", "8mbit", &net, &a]);
    let t = std::time::Instant::now();
    let o = env.berth(&["exec", &b, "wget", "-q", "-O", "/dev/null", &format!("http://{a}/busybox")]);
    let took = t.elapsed().as_secs_f64();
    assert!(o.ok(), "{o}");
    assert!(took > 1.4, "8 mbit/s holds 2 MB back: {took:.2} s");

    // Cleared: fast again, no helper process, no loss table.
    env.ok(&["network", "impair", "--clear", &net, &a]);
    let fast = ping_avg(&env, &b, &a, 3);
    assert!(fast < 20.0, "after --clear: {fast} ms");
    assert_eq!(delay_lines_of(&env), 0);
    assert!(!std::process::Command::new("nft").args(["list", "table", "netdev", &env.nft_table()]).output().unwrap().status.success(), "no loss table");

    // Bad values are named.
    let o = env.berth(&["network", "impair", "--jitter", "10ms", &net, &a]);
    assert!(o.code != 0 && o.stderr.contains("jitter"), "{o}");
    let o = env.berth(&["network", "impair", "--rate", "fast", &net, &a]);
    assert!(o.code != 0 && o.stderr.contains("invalid rate \"fast\""), "{o}");
    let other = env.name("other");
    env.ok(&["network", "create", &other]);
    let o = env.berth(&["network", "impair", "--delay", "5ms", &other, &a]);
    assert!(o.code != 0 && o.stderr.contains("not connected"), "{o}");
}

#[test]
fn link_emulation_from_a_script_survives_restart_and_removal() {
    let env = Env::new("link_emulation_from_a_script_survives_restart_and_removal");
    let p = env.name("s");
    let f = env.dir.join("impair.rhai");
    std::fs::write(
        &f,
        format!(
            r#"
fn rtt(from, to) {{
    let r = from.exec(["ping", "-c", "3", "-i", "0.2", to.name]);
    let avg = r.stdout.split("min/avg/max = ")[1].split("/")[1];
    parse_float(avg)
}}
let n = network("{p}net");
let a = run("busybox", #{{ name: "{p}a", network: "{p}net", cmd: ["sleep", "600"] }});
let b = run("busybox", #{{ name: "{p}b", network: "{p}net", cmd: ["sleep", "600"] }});
n.impair(a, #{{ delay: "40ms", loss: 0.0 }});
let slow = rtt(b, a);
assert(slow >= 38.0, `delayed: ${{slow}}`);
a.restart();
let again = rtt(b, a);
assert(again >= 38.0, `still delayed after a restart: ${{again}}`);
n.impair(a, #{{ delay: 20 }});
let twenty = rtt(b, a);
assert(twenty >= 18.0 && twenty < 38.0, `changed to 20 ms: ${{twenty}}`);
n.impair(a, #{{ loss: 5.0, delay: "10ms" }});
print("impaired ok");
"#
        ),
    )
    .unwrap();
    let o = env.berth(&["run", f.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("impaired ok"), "{o}");
    if impair_mechanism(&env) == "netem" {
        let q = qdiscs_in(env.pid(&format!("{p}a")), "eth0");
        assert!(q.contains("netem") && q.contains("delay 10ms") && q.contains("loss 5%"), "netem on a's eth0: {q}");
        assert_eq!(delay_lines_of(&env), 0, "netem needs no delay line");
    } else {
        assert_eq!(delay_lines_of(&env), 1, "one delay line for a's link");
    }
    // Removing the container takes its delay line and loss chain along.
    env.ok(&["rm", "-f", &format!("{p}a")]);
    assert!(wait_until(std::time::Duration::from_secs(3), || delay_lines_of(&env) == 0));
    assert!(!std::process::Command::new("nft").args(["list", "table", "netdev", &env.nft_table()]).output().unwrap().status.success(), "no loss table");
    let bad = env.dir.join("bad.rhai");
    std::fs::write(&bad, format!("let n = network(\"{p}net\");\nlet b = container(\"{p}b\");\nn.impair(b, #{{ dealy: \"5ms\" }});\n")).unwrap();
    let o = env.berth(&["run", bad.to_str().unwrap()]);
    assert!(o.code != 0 && o.stderr.contains("unknown impair option \"dealy\""), "{o}");
}

/// A static UDP echo server for the container: busybox has no UDP server,
/// so the test compiles one (the same toolchain that builds berth).
fn udp_echo_image(env: &Env) -> String {
    let dir = env.dir.join("udpecho");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("udpecho.rs"),
        r#"fn main() {
    let port = std::env::args().nth(1).unwrap();
    let s = std::net::UdpSocket::bind(format!("0.0.0.0:{port}")).unwrap();
    let mut buf = [0u8; 1500];
    loop {
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = s.send_to(&reply, from);
        }
    }
}
"#,
    )
    .unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .args(["-O", "-C", "target-feature=+crt-static", "-o"])
        .arg(dir.join("udpecho"))
        .arg(dir.join("udpecho.rs"))
        .output()
        .unwrap();
    assert!(out.status.success(), "compiling the UDP echo server: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\nCOPY udpecho /bin/udpecho\nEXPOSE 5353/udp\nCMD [\"udpecho\", \"5353\"]\n").unwrap();
    let tag = format!("{}:1", env.name("udpecho"));
    env.ok(&["build", "-q", "-t", &tag, dir.to_str().unwrap()]);
    tag
}

fn udp_ask(addr: &str, msg: &str) -> Option<String> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_millis(500))).ok()?;
    let mut buf = [0u8; 1500];
    // UDP may lose the first datagram while the rules settle: ask a few times.
    for _ in 0..6 {
        s.send_to(msg.as_bytes(), addr).ok()?;
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    None
}

#[test]
fn published_udp_port_answers_from_loopback_and_the_host_address() {
    let env = Env::new("published_udp_port_answers_from_loopback_and_the_host_address");
    let img = udp_echo_image(&env);
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let c = env.name("udp");
    env.run_detached(&c, &["-p", &format!("{port}:5353/udp"), &img]);
    assert!(env.ok(&["port", &c]).contains(&format!("5353/udp -> 0.0.0.0:{port}")));
    assert_eq!(udp_ask(&format!("127.0.0.1:{port}"), "hi").as_deref(), Some("echo:hi"), "via loopback");
    if let Some(h) = host_address() {
        assert_eq!(udp_ask(&format!("{h}:{port}"), "there").as_deref(), Some("echo:there"), "via the host's address {h}");
    }
    // -P publishes the image's EXPOSEd UDP port on a free host port.
    let p = env.name("udpP");
    env.run_detached(&p, &["-P", &img]);
    let line = env.ok(&["port", &p]);
    let hp = line.rsplit(':').next().unwrap().trim().to_string();
    assert!(line.starts_with("5353/udp -> "), "{line}");
    assert_eq!(udp_ask(&format!("127.0.0.1:{hp}"), "P").as_deref(), Some("echo:P"));
    env.ok(&["rm", "-f", &c]);
    assert_eq!(udp_ask(&format!("127.0.0.1:{port}"), "gone"), None, "rules gone with the container");
}

/// A foreign `ip filter FORWARD` chain (where iptables-nft, and so Docker,
/// keeps its FORWARD rules) dropping this test's subnet, as Docker's DROP
/// policy drops every berth network; scoped to our subnet so that the tests
/// running beside this one are not cut off.
struct ForeignDrop {
    created_table: bool,
    handles: Vec<u64>,
}

impl ForeignDrop {
    fn new(subnet: &str, tag: &str) -> ForeignDrop {
        let nft = |args: &[&str]| std::process::Command::new("nft").args(args).output().unwrap();
        let created_table = !nft(&["list", "table", "ip", "filter"]).status.success();
        if !nft(&["list", "chain", "ip", "filter", "FORWARD"]).status.success() {
            let o = nft(&["add table ip filter; add chain ip filter FORWARD { type filter hook forward priority 0; policy accept; }"]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let mut handles = Vec::new();
        for dir in ["saddr", "daddr"] {
            let o = nft(&["-e", "-a", "add", "rule", "ip", "filter", "FORWARD", "ip", dir, subnet, "counter", "drop", "comment", tag]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            let line = out.lines().find(|l| l.contains("# handle ")).unwrap_or_else(|| panic!("no handle in {out}"));
            handles.push(line.rsplit("# handle ").next().unwrap().trim().parse().unwrap());
        }
        ForeignDrop { created_table, handles }
    }
}

impl Drop for ForeignDrop {
    fn drop(&mut self) {
        for h in &self.handles {
            let _ = std::process::Command::new("nft").args(["delete", "rule", "ip", "filter", "FORWARD", "handle", &h.to_string()]).status();
        }
        if self.created_table {
            let _ = std::process::Command::new("nft").args(["delete", "table", "ip", "filter"]).status();
        }
    }
}

fn forward_chain() -> String {
    String::from_utf8_lossy(&std::process::Command::new("nft").args(["-a", "list", "chain", "ip", "filter", "FORWARD"]).output().unwrap().stdout).into_owned()
}

#[test]
fn forwarding_survives_a_host_firewall_that_drops_it() {
    let env = Env::new("forwarding_survives_a_host_firewall_that_drops_it");
    let tag = format!("f{}", std::process::id() % 10000);
    let up = Upstream::new(&tag, 8);
    let subnet = "10.216.31.0/24";
    let _drop = ForeignDrop::new(subnet, &format!("berth-test-{tag}"));
    let www = env.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "through-the-drop\n").unwrap();
    let mut server = std::process::Command::new("ip")
        .args(["netns", "exec", &up.ns, "busybox", "httpd", "-f", "-p", "198.51.100.9:8080", "-h", www.to_str().unwrap()])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let net = env.name("fw");
    let id = env.ok(&["network", "create", "--subnet", subnet, &net]);
    let bridge = format!("br-{}", &id[..12]);
    assert!(forward_chain().contains(&format!("iifname \"{bridge}\"")), "berth accepts its bridge ahead of the drop:\n{}", forward_chain());
    let get = || env.berth(&["run", "--rm", "--network", &net, "busybox", "wget", "-q", "-O-", "http://198.51.100.9:8080/"]);
    let o = get();
    assert_eq!(o.stdout, "through-the-drop\n", "{o}");

    // Take berth's rules away (a firewall that arrived later): the drop bites...
    for l in forward_chain().lines().filter(|l| l.contains(&bridge)) {
        let h = l.rsplit("# handle ").next().unwrap().trim();
        std::process::Command::new("nft").args(["delete", "rule", "ip", "filter", "FORWARD", "handle", h]).status().unwrap();
    }
    let o = env.berth(&["run", "--rm", "--network", &net, "busybox", "ping", "-c", "1", "-W", "2", "198.51.100.9"]);
    assert!(o.stdout.contains("100% packet loss"), "the foreign drop really drops: {o}");
    // ...until berth next writes its rules (here: another network is made).
    env.ok(&["network", "create", &env.name("fw2")]);
    let o = get();
    assert_eq!(o.stdout, "through-the-drop\n", "{o}");
    let o = env.berth(&["run", "--rm", "--network", &net, "busybox", "ping", "-c", "1", "-W", "2", "198.51.100.9"]);
    assert!(o.stdout.contains(" 0% packet loss"), "{o}");
    let _ = server.kill();
    let _ = server.wait();
    // Its rules leave with its networks.
    for n in env.ok(&["network", "ls", "-q"]).split_whitespace() {
        env.ok(&["network", "rm", n]);
    }
    assert!(!forward_chain().contains(&bridge), "{}", forward_chain());
}

#[test]
fn a_stopped_container_is_off_its_network_and_back_on_start() {
    let env = Env::new("net_stopped");
    let net = env.name("n");
    env.ok(&["network", "create", &net]);
    let (a, b) = (env.name("a"), env.name("b"));
    env.run_detached(&a, &["--network", &net, "busybox", "sleep", "600"]);
    env.run_detached(&b, &["--network", &net, "busybox", "sleep", "600"]);
    let ping = || env.berth(&["exec", &b, "ping", "-c", "1", "-W", "1", &a]).code == 0;
    assert!(ping(), "running: reachable");
    let ip = env.inspect_f(&a, &format!("{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}"));
    assert!(ip.starts_with("172.") || ip.split('.').count() == 4, "an address: {ip}");
    env.ok(&["stop", "-t", "0", &a]);
    assert!(!ping(), "a stopped container does not answer (its namespace is gone)");
    assert!(!links_of(&env.full_id(&a)[..10]), "its veth goes with it");
    env.ok(&["start", &a]);
    assert!(ping(), "started again: reachable at once (same address, same MAC, so no stale ARP entry)");
    assert_eq!(env.inspect_f(&a, &format!("{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}")), ip, "it keeps its address");
}

/// Whether a host link of this container (by id prefix) is still there,
/// waiting a moment for the kernel's lazy clean-up.
fn links_of(prefix: &str) -> bool {
    !wait_until(std::time::Duration::from_secs(10), || {
        let out = std::process::Command::new("ip").args(["-o", "link"]).output().unwrap();
        !String::from_utf8_lossy(&out.stdout).contains(prefix)
    })
}

#[test]
fn an_explicit_subnet_the_host_already_routes_is_refused() {
    // Two roots (two users of one host, or two parallel test runs): the
    // second may not put a bridge on the first one's subnet.
    let a = Env::new("net_overlap_a");
    let b = Env::new("net_overlap_b");
    a.ok(&["network", "create", "--subnet", "10.234.1.0/24", &a.name("n")]);
    let o = b.berth(&["network", "create", "--subnet", "10.234.1.128/25", &b.name("n")]);
    assert!(o.code != 0 && o.stderr.contains("subnet 10.234.1.128/25 overlaps the host's route to 10.234.1.0/24; choose another --subnet"), "{o}");
    let o = a.berth(&["network", "create", "--subnet", "10.234.0.0/16", &a.name("m")]);
    assert!(o.code != 0 && o.stderr.contains(&format!("overlaps network {} (10.234.1.0/24)", a.name("n"))), "{o}");
    // An automatic subnet steers clear of it.
    b.ok(&["network", "create", &b.name("auto")]);
}

/// `rm -f A B ...` removes them together (killed side by side, the peers'
/// hosts files written once): every name leaves every peer's file, and a
/// name that is already gone is no error with -f.
#[test]
fn removing_several_at_once_takes_their_names_from_the_peers() {
    let env = Env::new("rm_many");
    let net = env.name("n");
    env.ok(&["network", "create", &net]);
    let names: Vec<String> = (0..4).map(|i| env.name(&format!("c{i}"))).collect();
    for n in &names {
        env.run_detached(n, &["--network", &net, "busybox", "sleep", "600"]);
    }
    let peer = &names[3];
    let hosts = env.ok(&["exec", peer, "cat", "/etc/hosts"]);
    assert!(names[..3].iter().all(|n| hosts.contains(n.as_str())), "{hosts}");
    let gone = env.name("never-was");
    let o = env.berth(&["rm", "-f", &names[0], &gone, &names[1], &names[2]]);
    assert!(o.ok(), "{o}");
    assert_eq!(o.stdout.lines().collect::<Vec<_>>(), [names[0].as_str(), names[1].as_str(), names[2].as_str()], "reported in order");
    let hosts = env.ok(&["exec", peer, "cat", "/etc/hosts"]);
    assert!(names[..3].iter().all(|n| !hosts.contains(n.as_str())), "{hosts}");
    let left = env.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(left.trim(), peer.as_str());
    // Without -f, a running one is refused and the others still go.
    env.run_detached(&names[0], &["--network", &net, "busybox", "sleep", "600"]);
    env.ok(&["stop", "-t", "0", &names[0]]);
    let o = env.berth(&["rm", &names[0], peer]);
    assert!(!o.ok() && o.stderr.contains("running"), "{o}");
    assert_eq!(env.ok(&["ps", "-a", "--format", "{{.Names}}"]).trim(), peer.as_str());
    env.ok(&["rm", "-f", peer]);
    env.ok(&["network", "rm", &net]);
}
