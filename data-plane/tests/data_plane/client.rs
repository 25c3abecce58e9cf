//! A minimal HTTP/1.1 client over `std::net::TcpStream`: enough to check status, headers and exact framing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// One connection that can carry several requests (keep-alive).
pub struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    pub fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connecting to the data plane works");
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("set timeout");
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .expect("set timeout");
        Self {
            reader: BufReader::new(stream),
        }
    }

    /// Sends raw request bytes (head and body) and reads one response framed by its `content-length`.
    pub fn send(&mut self, request: &[u8]) -> Response {
        self.reader
            .get_mut()
            .write_all(request)
            .expect("writing the request works");
        self.read_response()
    }

    /// True when the server has closed the connection (the next read returns end of file).
    pub fn is_closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0))
    }

    fn read_response(&mut self) -> Response {
        let status_line = self.read_line();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("malformed status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.read_line();
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("malformed header line {line:?}"));
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let length: usize = response
            .header("content-length")
            .expect("every response carries content-length")
            .parse()
            .expect("content-length is a number");
        response.body.resize(length, 0);
        self.reader
            .read_exact(&mut response.body)
            .expect("the body is as long as content-length says");
        response
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("reading the response works");
        line.trim_end_matches(['\r', '\n']).to_owned()
    }
}

/// `GET path` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    Connection::open(addr).send(get_request(path).as_bytes())
}

pub fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: gatehouse.test\r\n\r\n")
}
