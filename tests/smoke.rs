mod common;
use common::Server;

#[test]
fn ping_set_get_over_real_socket() {
    let s = Server::cairn(&[]);
    let mut con = s.con();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(v, "v");
}
