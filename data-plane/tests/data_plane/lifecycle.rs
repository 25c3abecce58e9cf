use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use gatehouse_data_plane::{DataPlane, DataPlaneError};

use crate::client::{Connection, get, get_request};
use crate::harness::{RunningDataPlane, STOP_DEADLINE, test_settings};

#[test]
fn binding_port_zero_reports_the_real_port_before_running() {
    let data_plane = DataPlane::bind(test_settings()).expect("binding port 0 works");

    let addr = data_plane.local_addr();

    assert_ne!(addr.port(), 0);
    assert!(addr.ip().is_loopback());
}

#[test]
fn binding_an_address_in_use_fails_before_anything_runs() {
    let occupant = TcpListener::bind("127.0.0.1:0").expect("binding port 0 works");
    let mut settings = test_settings();
    settings.listen = occupant.local_addr().expect("bound");

    let result = DataPlane::bind(settings);

    match result {
        Err(DataPlaneError::Bind { addr, source }) => {
            assert_eq!(addr, occupant.local_addr().expect("bound"));
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("expected a bind error, got {other:?}"),
    }
}

#[test]
fn zero_worker_threads_is_rejected_at_bind() {
    let mut settings = test_settings();
    settings.threads = 0;

    assert!(matches!(
        DataPlane::bind(settings),
        Err(DataPlaneError::InvalidSettings(_))
    ));
}

#[test]
fn a_client_that_connects_between_bind_and_run_is_served() {
    let data_plane = DataPlane::bind(test_settings()).expect("binding port 0 works");
    // The connection waits in the kernel's accept queue of the socket that pingora will adopt.
    let mut early = Connection::open(data_plane.local_addr());

    let running = RunningDataPlane::run(data_plane);

    assert_eq!(early.send(get_request("/healthz").as_bytes()).status, 200);
    drop(running);
}

#[test]
fn resolving_the_shutdown_future_makes_run_return_and_frees_the_port() {
    // On an address of its own: the other tests bind ports on 127.0.0.1 all the time, and one of them may be given
    // the port this one frees, which would then still accept.
    let mut settings = test_settings();
    settings.listen = std::net::SocketAddr::from(([127, 0, 0, 2], 0));
    let data_plane =
        RunningDataPlane::run(DataPlane::bind(settings).expect("binding port 0 works"));
    let addr = data_plane.addr;
    assert_eq!(get(addr, "/healthz").status, 200);

    let (result, took) = data_plane.stop();

    assert!(result.is_ok(), "run returned {result:?}");
    assert!(took < STOP_DEADLINE, "stopping took {took:?}");
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "the listener still accepts after run returned"
    );
}

#[test]
fn a_data_plane_dropped_without_running_releases_its_port() {
    let data_plane = DataPlane::bind(test_settings()).expect("binding port 0 works");
    let addr = data_plane.local_addr();

    drop(data_plane);

    let mut settings = test_settings();
    settings.listen = addr;
    assert!(DataPlane::bind(settings).is_ok());
}
