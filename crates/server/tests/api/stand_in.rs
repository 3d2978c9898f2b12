//! A local stand-in for a payment platform's API: Keygate's platform API client talks to it
//! over real HTTP (`options.api_base_url`), it answers what a function of the request says,
//! records every request, and can be made unavailable (503) for a number of requests.
use keygate_billing::Headers;
use keygate_billing::testkit::{ApiRequest, Kit, Stage};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

type Answer = dyn Fn(&Seen) -> (u16, Value) + Send + Sync;

struct State {
    unavailable: usize,
    seen: Vec<Seen>,
}

pub struct ApiStandIn {
    pub base_url: String,
    state: Arc<Mutex<State>>,
}

impl ApiStandIn {
    /// Listens on a random loopback port; `answer` gives each request's status and JSON.
    pub async fn start(answer: impl Fn(&Seen) -> (u16, Value) + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            unavailable: 0,
            seen: Vec::new(),
        }));
        let answer: Arc<Answer> = Arc::new(answer);
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let state = shared.clone();
                let answer = answer.clone();
                tokio::spawn(async move {
                    let Some(seen) = read_request(&mut socket).await else {
                        return;
                    };
                    let (status, body) = {
                        let mut s = state.lock().unwrap();
                        s.seen.push(seen.clone());
                        if s.unavailable > 0 {
                            s.unavailable -= 1;
                            (503, json!({"error": "unavailable"}))
                        } else {
                            answer(&seen)
                        }
                    };
                    let body = body.to_string();
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        ApiStandIn { base_url, state }
    }

    /// The stand-in of a kit's platform: answers with [`Kit::api_answer`] for the stage the
    /// test sets in `stage` (404 where the kit has no answer).
    pub async fn for_kit(kit: &'static dyn Kit, stage: Arc<Mutex<Stage>>) -> Self {
        Self::start(move |seen| {
            let stage = *stage.lock().unwrap();
            let request = ApiRequest {
                method: &seen.method,
                path_and_query: &seen.path_and_query,
                headers: &seen.headers,
                body: &seen.body,
            };
            kit.api_answer(&stage, &request)
                .unwrap_or_else(|| (404, json!({"error": "not found"})))
        })
        .await
    }

    /// Answers 503 to the next `n` requests.
    pub fn fail_next(&self, n: usize) {
        self.state.lock().unwrap().unavailable = n;
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path_and_query = first.next()?.to_string();
    let mut headers = Headers::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim(), value.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = data[head_end..].to_vec();
    while body.len() < length {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    body.truncate(length);
    Some(Seen {
        method,
        path_and_query,
        headers,
        body,
    })
}
