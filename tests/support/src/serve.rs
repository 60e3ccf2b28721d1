//! A real `uae serve` process on an ephemeral loopback port, and an HTTP
//! client for it.

use std::io::{BufRead, BufReader};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cli::command;

/// A running `uae serve`; killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: Arc<Mutex<String>>,
    agent: ureq::Agent,
}

/// A response: its status and body.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Server {
    /// Starts `uae serve --addr 127.0.0.1:0 ARGS` and waits until it listens.
    pub fn start(args: &[&str]) -> Self {
        let mut child = command()
            .arg("serve")
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("uae serve starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_string());
                }
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!("uae serve did not start: {}", log.lock().unwrap());
            }
        };
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build();
        Self { child, base, log, agent }
    }

    /// Starts a server that is expected to fail, and returns its status and
    /// standard error.
    pub fn fail(args: &[&str]) -> (ExitStatus, String) {
        let out = command().arg("serve").args(["--addr", "127.0.0.1:0"]).args(args).output().expect("uae serve runs");
        (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// `POST path` with a JSON body and optional extra headers.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> Reply {
        self.post_with(path, &body.to_string(), &[])
    }

    /// `POST path` with a raw body and headers.
    pub fn post_with(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.agent.post(&format!("{}{path}", self.base)).set("Content-Type", "application/json");
        for (name, value) in headers {
            request = request.set(name, value);
        }
        reply(request.send_string(body))
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Reply {
        reply(self.agent.get(&format!("{}{path}", self.base)).call())
    }

    /// The host and port.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its status and everything
    /// it wrote to standard error.
    pub fn wait(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().expect("uae serve exits");
        std::thread::sleep(Duration::from_millis(100));
        let log = self.log.lock().unwrap().clone();
        (status, log)
    }

    /// Standard error so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

fn reply(result: Result<ureq::Response, ureq::Error>) -> Reply {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = response.status();
    Reply { status, body: response.into_string().expect("a text body") }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `url` answers a GET with a success status (a server of
/// another project starting up); panics, naming it, after `limit`.
pub fn wait_until_up(url: &str, limit: Duration) {
    let start = std::time::Instant::now();
    while ureq::get(url).timeout(Duration::from_secs(5)).call().is_err() {
        assert!(start.elapsed() < limit, "{url} did not answer within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
