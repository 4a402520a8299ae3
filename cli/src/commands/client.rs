//! The HTTP client of `weir apply/get/diff/delete`: finds the server and key (`WEIR_URL`,
//! `WEIR_API_KEY`, or `~/.config/weir/config.yaml`), sends requests, and turns problem+json
//! replies into errors that read like the server wrote them (detail + diagnostics).

use anyhow::{Context, Result, anyhow};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use weir_control_plane::api::{PipelinePage, Problem};

/// Where the server is and how to authenticate.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    url: Option<String>,
    api_key: Option<String>,
}

/// A client of the control plane API.
pub struct Client {
    base: String,
    api_key: String,
    http: reqwest::Client,
}

/// A successful reply.
pub struct Reply {
    pub text: String,
}

impl Reply {
    /// The body as one of the API's types (`weir_control_plane::api`).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.text).with_context(|| {
            format!(
                "the server's reply is not the {} this weir expects (is the server another \
                 version?)",
                std::any::type_name::<T>()
                    .rsplit("::")
                    .next()
                    .unwrap_or("body")
            )
        })
    }
}

impl Client {
    /// From the environment, then the config file. The URL defaults to the local `weir serve`.
    pub fn from_env() -> Result<Client> {
        let path = std::env::var_os("HOME")
            .map(|h| std::path::PathBuf::from(h).join(".config/weir/config.yaml"));
        let file: FileConfig = match path.as_ref().filter(|p| p.is_file()) {
            Some(p) => serde_yaml::from_str(
                &std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?,
            )
            .with_context(|| format!("{} (expected `url:` and `api_key:`)", p.display()))?,
            None => FileConfig::default(),
        };
        let base = std::env::var("WEIR_URL")
            .ok()
            .or(file.url)
            .unwrap_or_else(|| "http://127.0.0.1:7070".into());
        let api_key = std::env::var("WEIR_API_KEY")
            .ok()
            .or(file.api_key)
            .ok_or_else(|| {
                anyhow!(
                    "no API key: set WEIR_API_KEY (with `weir dev`, run the `export` line it \
                     printed, or `export WEIR_API_KEY=$(cat .weir/dev-api-key)`; with \
                     `weir serve`, the key it printed on first start) or `api_key:` in \
                     ~/.config/weir/config.yaml"
                )
            })?;
        Ok(Client::new(&base, &api_key))
    }

    /// A client of the server at `base` (e.g. `http://127.0.0.1:7070`, with or without the
    /// `/api/v1` suffix that `weir dev` prints) with `api_key`.
    pub fn new(base: &str, api_key: &str) -> Client {
        Client {
            base: base_url(base),
            api_key: api_key.to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// `GET /api/v1{path}` as one of the API's types.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(Method::GET, path, None, None).await?.parse()
    }

    /// `POST /api/v1{path}` with a JSON body (one of the API's request types), the reply as
    /// one of its response types.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let body = serde_json::to_string(body).context("encode the request")?;
        self.send(Method::POST, path, Some(("application/json", body)), None)
            .await?
            .parse()
    }

    /// The names of every pipeline of the caller's tenant, following the pages.
    pub async fn pipeline_names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = "/pipelines?limit=500".to_string();
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page: PipelinePage = self.get(&path).await?;
            names.extend(page.items.into_iter().map(|p| p.name));
            cursor = page.next_cursor;
            if cursor.is_none() {
                return Ok(names);
            }
        }
    }

    /// Sends a request to `/api/v1{path}`; a non-2xx reply becomes an error with the problem.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
        accept: Option<&str>,
    ) -> Result<Reply> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.api_key);
        if let Some((content_type, text)) = body {
            req = req.header("content-type", content_type).body(text);
        }
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let res = req.send().await.with_context(|| {
            format!(
                "cannot reach the Weir server at {} (is `weir serve` running? set WEIR_URL)",
                self.base
            )
        })?;
        let status = res.status();
        let text = res.text().await.context("read the server's reply")?;
        if status.is_success() {
            Ok(Reply { text })
        } else {
            Err(anyhow!(describe_problem(status, &text)))
        }
    }
}

/// The server's root URL: trailing slashes and an `/api/v1` suffix removed.
fn base_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    url.strip_suffix("/api/v1")
        .unwrap_or(url)
        .trim_end_matches('/')
        .to_string()
}

/// A problem+json body as lines for a terminal.
pub fn describe_problem(status: StatusCode, text: &str) -> String {
    let Ok(p) = serde_json::from_str::<Problem>(text) else {
        return format!("the server answered {status}: {text}");
    };
    let mut out = format!("{} ({}): {}", p.title, p.code, p.detail);
    for d in p
        .diagnostics
        .as_ref()
        .and_then(|d| d.as_array())
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "\n  {}:{}:{}: {}{}",
            d["file"].as_str().unwrap_or("?"),
            d["line"],
            d["column"],
            d["message"].as_str().unwrap_or(""),
            d["code"]
                .as_str()
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default()
        ));
    }
    out
}

/// The API path of a resource kind (`Pipeline` → `pipelines`).
pub fn collection(kind: &str) -> Result<&'static str> {
    match kind.to_ascii_lowercase().trim_end_matches('s') {
        "pipeline" => Ok("pipelines"),
        "stream" => Ok("streams"),
        _ => Err(anyhow!(
            "resource kind `{kind}` is not managed by the API yet (known: pipeline, stream)"
        )),
    }
}

/// Runs a future on a fresh runtime.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?
        .block_on(f))
}

#[cfg(test)]
mod tests {
    use super::base_url;

    #[test]
    fn the_url_works_with_or_without_the_api_prefix() {
        for url in [
            "http://127.0.0.1:7070",
            "http://127.0.0.1:7070/",
            "http://127.0.0.1:7070/api/v1",
            "http://127.0.0.1:7070/api/v1/",
        ] {
            assert_eq!(base_url(url), "http://127.0.0.1:7070", "{url}");
        }
    }
}
