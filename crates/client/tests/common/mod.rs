//! Test harness: the real Keygate server on its own tokio runtime, admin calls over HTTP, and a
//! tiny HTTP server that replays recorded bytes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use keygate_client::{Client, KeyRing};
use serde_json::{Value, json};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "keygate-client-{label}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct Harness {
    pub rt: tokio::runtime::Runtime,
    server: Option<keygate_server::Server>,
    pub base: String,
    pub dir: PathBuf,
    http: ureq::Agent,
}

/// One vendor account on the server.
pub struct Account {
    pub id: String,
    pub api_key: String,
    pub product_id: String,
}

impl Harness {
    pub fn start() -> Harness {
        let dir = temp_dir("server");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut config = keygate_server::Config::for_database(format!(
            "sqlite://{}",
            dir.join("k.db").display()
        ));
        config.root_token = Some("root".into());
        let server = rt
            .block_on(keygate_server::Server::start(config))
            .expect("server starts");
        let base = server.url("");
        Harness {
            rt,
            server: Some(server),
            base,
            dir,
            http: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
        }
    }

    /// Stop the server; the port then refuses connections.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            self.rt.block_on(server.stop());
        }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Vec<u8>, Option<String>) {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {token}");
        let result = match (method, body) {
            ("GET", _) => self.http.get(&url).header("authorization", &auth).call(),
            (_, Some(body)) => self
                .http
                .post(&url)
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .send(body.to_string()),
            (_, None) => self
                .http
                .post(&url)
                .header("authorization", &auth)
                .send_empty(),
        };
        let mut response = result.expect("request reaches the server");
        let status = response.status().as_u16();
        let signature = response
            .headers()
            .get("keygate-signature")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.body_mut().read_to_vec().unwrap();
        (status, bytes, signature)
    }

    /// An admin call that must succeed; returns the JSON body (Null for 204).
    pub fn admin(&self, api_key: &str, path: &str, body: Value) -> Value {
        let (status, bytes, _) = self.request("POST", path, api_key, Some(body));
        assert!(
            (200..300).contains(&status),
            "{path} → {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        }
    }

    pub fn account(&self, name: &str) -> Account {
        let created = self.admin("root", "/v1/accounts", json!({"name": name}));
        let id = created["account"]["id"].as_str().unwrap().to_owned();
        let api_key = created["api_key"].as_str().unwrap().to_owned();
        let product = self.admin(
            &api_key,
            "/v1/products",
            json!({"code": "app", "name": "App"}),
        );
        Account {
            id,
            api_key,
            product_id: product["id"].as_str().unwrap().to_owned(),
        }
    }

    /// A license under a new policy with `extra` policy fields; returns (license id, key).
    pub fn license(&self, account: &Account, extra: Value) -> (String, String) {
        let mut policy = json!({"product_id": account.product_id, "name": "p"});
        for (k, v) in extra.as_object().unwrap() {
            policy[k] = v.clone();
        }
        let policy = self.admin(&account.api_key, "/v1/policies", policy);
        let license = self.admin(
            &account.api_key,
            "/v1/licenses",
            json!({"policy_id": policy["id"]}),
        );
        (
            license["id"].as_str().unwrap().to_owned(),
            license["key"].as_str().unwrap().to_owned(),
        )
    }

    pub fn keys(&self, account: &Account) -> KeyRing {
        Client::fetch_public_keys(&self.base, &account.id).unwrap()
    }

    pub fn client(&self, account: &Account) -> Client {
        Client::builder(&self.base)
            .public_keys(self.keys(account))
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A one-route HTTP server that answers every request with `status`, the optional signature header
/// and `body`, whatever was asked. Returns its base URL; it lives until the test process ends.
pub fn replay_server(status: u16, signature: Option<String>, body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut request_body = vec![0u8; length];
            let _ = reader.read_exact(&mut request_body);
            let mut head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            if let Some(sig) = &signature {
                head.push_str(&format!("keygate-signature: {sig}\r\n"));
            }
            head.push_str("\r\n");
            let mut stream = reader.into_inner();
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
            let _ = stream.flush();
        }
    });
    format!("http://{addr}")
}
