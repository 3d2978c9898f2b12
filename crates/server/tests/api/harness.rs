//! Starts the real server on a random port against a fresh database (a new SQLite file, or a
//! new PostgreSQL database on the machine's server), and talks to it over HTTP.
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use keygate_server::{Config, Server};
use keygate_store::sqlx;
use serde_json::{Value, json};
use std::path::PathBuf;

pub const ROOT_TOKEN: &str = "test-root-token";

pub fn postgres_admin_url() -> String {
    std::env::var("KEYGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

pub enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

pub struct TestApp {
    pub server: Server,
    pub db: Db,
    pub database_url: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: hyper::HeaderMap,
    pub raw: Bytes,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .or_else(|| self.body["code"].as_str())
            .unwrap_or("")
    }
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        Self::sqlite_with(|_| {}).await
    }

    pub async fn sqlite_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let dir = std::env::temp_dir().join(format!("keygate-test-{}", uuid_like()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keygate.db");
        let url = format!("sqlite://{}", path.display());
        Self::start(url, Db::Sqlite(dir), adjust).await
    }

    pub async fn postgres() -> TestApp {
        Self::postgres_with(|_| {}).await
    }

    pub async fn postgres_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let admin = postgres_admin_url();
        let name = format!("kgt_{}", uuid_like());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .expect("PostgreSQL must be running for the postgres tests (see .ci/run)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').unwrap().0;
        Self::start(format!("{base}/{name}"), Db::Postgres(name), adjust).await
    }

    async fn start(url: String, db: Db, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = Config::for_database(&url);
        config.root_token = Some(ROOT_TOKEN.into());
        adjust(&mut config);
        let server = Server::start(config).await.expect("server starts");
        let client = Client::builder(TokioExecutor::new()).build_http();
        let _ = url;
        TestApp {
            server,
            db,
            database_url: url,
            client,
        }
    }

    /// Stops the server (as a crash or a deploy would) and starts a new one on the same
    /// database.
    pub async fn restart(self) -> TestApp {
        let TestApp {
            server,
            db,
            database_url,
            ..
        } = self;
        server.stop().await;
        Self::start(database_url, db, |_| {}).await
    }

    /// Like [`restart`](Self::restart), with another configuration for the new process.
    pub async fn restart_with(self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let TestApp {
            server,
            db,
            database_url,
            ..
        } = self;
        server.stop().await;
        Self::start(database_url, db, adjust).await
    }

    /// One more server (another node) on this app's database.
    pub async fn another_node(&self, adjust: impl FnOnce(&mut Config)) -> Server {
        let mut config = Config::for_database(&self.database_url);
        adjust(&mut config);
        Server::start(config).await.expect("server starts")
    }

    pub async fn finish(self) {
        self.server.stop().await;
        match self.db {
            Db::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Db::Postgres(name) => {
                if let Ok(mut conn) =
                    <sqlx::PgConnection as sqlx::Connection>::connect(&postgres_admin_url()).await
                {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            }
        }
    }

    /// Sends a request; `body` is sent as-is when it is a string, as JSON otherwise.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let bytes = match body {
            Some(Value::String(raw)) => Bytes::from(raw),
            Some(v) => Bytes::from(v.to_string()),
            None => Bytes::new(),
        };
        self.send_bytes(method, path, token, bytes, headers).await
    }

    pub async fn send_bytes(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        bytes: Bytes,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(self.server.url(path))
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .client
            .request(req.body(Full::new(bytes)).unwrap())
            .await
            .expect("request sent");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let raw = res.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Reply {
            status,
            body,
            headers,
            raw,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send("GET", path, Some(token), None, &[]).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send("POST", path, Some(token), Some(body), &[]).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send("PATCH", path, Some(token), Some(body), &[]).await
    }

    /// A client endpoint: no credentials but the license key in the body.
    pub async fn client(&self, path: &str, body: Value) -> Reply {
        self.send("POST", path, None, Some(body), &[]).await
    }

    pub async fn validate(&self, body: Value) -> Reply {
        let r = self.client("/v1/licenses/validate", body).await;
        assert_eq!(r.status, 200, "validate answers 200: {}", r.body);
        r
    }

    /// Creates an account through the operator endpoint; returns its API key.
    pub async fn account(&self, name: &str) -> String {
        let r = self
            .send(
                "POST",
                "/v1/accounts",
                Some(ROOT_TOKEN),
                Some(json!({"name": name})),
                &[],
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["api_key"].as_str().unwrap().to_string()
    }

    /// Creates a product and a policy with the given fields; returns the policy id.
    pub async fn policy(&self, key: &str, fields: Value) -> String {
        let code = format!("p{}", &uuid_like()[..12]);
        let product = self
            .post("/v1/products", key, json!({"code": code, "name": "App"}))
            .await;
        assert_eq!(product.status, 201, "{}", product.body);
        let mut body = json!({"product_id": product.body["id"], "name": "Policy"});
        for (k, v) in fields.as_object().unwrap() {
            body[k] = v.clone();
        }
        let policy = self.post("/v1/policies", key, body).await;
        assert_eq!(policy.status, 201, "{}", policy.body);
        policy.body["id"].as_str().unwrap().to_string()
    }

    /// Creates a license of a new policy with the given fields; returns the license object.
    pub async fn license(&self, key: &str, policy_fields: Value) -> Value {
        let policy = self.policy(key, policy_fields).await;
        let license = self
            .post("/v1/licenses", key, json!({"policy_id": policy}))
            .await;
        assert_eq!(license.status, 201, "{}", license.body);
        license.body
    }
}

pub fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:x}{:x}{:x}",
        nanos,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a scenario against both engines: `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::harness::TestApp::sqlite().await;
                super::$name(&app).await;
                app.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = $crate::harness::TestApp::postgres().await;
                super::$name(&app).await;
                app.finish().await;
            }
        }
    )*};
}
