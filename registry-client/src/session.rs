//! One registry as the client sees it: which scheme reaches it (learned by pinging `/v2/`),
//! which auth it wants, the Bearer tokens held per scope set, and the request loop that adds
//! credentials, answers 401s once and follows redirects without carrying credentials to
//! another origin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{
    HeaderName, HeaderValue, AUTHORIZATION, LOCATION, USER_AGENT, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode, Uri};

use crate::auth::challenge::{self, Challenge};
use crate::auth::{normalize_scopes, Credentials, Token, TokenResponse};
use crate::error::{ApiErrors, RegistryError, Result};
use crate::transport::{self, BodySpec, Transport};

const MAX_REDIRECTS: usize = 5;
const ERROR_BODY_LIMIT: usize = 64 << 10;
/// Request bodies from this size on are not bounded by the response-head timeout.
const UNBOUNDED_BODY: u64 = 1 << 20;

/// What the registry asked for in its `/v2/` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Scheme {
    fn from_challenges(cs: &[Challenge]) -> Option<Self> {
        // Prefer Bearer: a registry offering both accepts tokens everywhere.
        if let Some(c) = cs.iter().find(|c| c.scheme == "bearer") {
            let realm = c.param("realm")?.to_owned();
            return Some(Scheme::Bearer {
                realm,
                service: c.param("service").map(str::to_owned),
            });
        }
        cs.iter()
            .any(|c| c.scheme == "basic")
            .then_some(Scheme::Basic)
    }
}

/// A request as data, so it can be sent again after a 401 or a redirect.
#[derive(Clone, Debug)]
pub(crate) struct Req {
    pub(crate) method: Method,
    /// A path on the registry (`/v2/...`) or an absolute URL (an upload `Location`).
    pub(crate) url: String,
    pub(crate) headers: Vec<(HeaderName, String)>,
    pub(crate) body: BodySpec,
    /// Short description for errors: `GET manifest library/alpine:3`.
    pub(crate) what: String,
}

impl Req {
    pub(crate) fn new(method: Method, url: impl Into<String>, what: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: BodySpec::Empty,
            what: what.into(),
        }
    }

    pub(crate) fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn body(mut self, body: BodySpec) -> Self {
        self.body = body;
        self
    }
}

struct Reached {
    base: Uri,
    scheme: Scheme,
}

pub(crate) struct Session {
    /// The registry as named in references (`docker.io`, `127.0.0.1:5000`).
    pub(crate) registry: String,
    /// Where its API lives (`registry-1.docker.io` for `docker.io`).
    pub(crate) api_host: String,
    transport: Arc<Transport>,
    creds: Option<Credentials>,
    reached: tokio::sync::Mutex<Option<Reached>>,
    tokens: Mutex<HashMap<String, Token>>,
    fetching: tokio::sync::Mutex<()>,
}

fn bad(registry: &str, reason: impl Into<String>) -> RegistryError {
    RegistryError::InvalidResponse {
        registry: registry.to_owned(),
        reason: reason.into(),
    }
}

impl Session {
    pub(crate) fn new(
        registry: &str,
        api_host: String,
        transport: Arc<Transport>,
        creds: Option<Credentials>,
    ) -> Self {
        Self {
            registry: registry.to_owned(),
            api_host,
            transport,
            creds,
            reached: tokio::sync::Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Ping `/v2/` once: choose the scheme (HTTPS, or HTTP where allowed and HTTPS fails at the
    /// connection level, as Docker does) and learn the auth scheme.
    pub(crate) async fn base(&self) -> Result<(Uri, Scheme)> {
        let mut reached = self.reached.lock().await;
        if let Some(r) = reached.as_ref() {
            return Ok((r.base.clone(), r.scheme.clone()));
        }
        let https = format!("https://{}", self.api_host);
        let (base, resp) = match self.ping(&https).await {
            Ok(resp) => (https, resp),
            Err(e) if transport::http_allowed(&self.api_host, &self.transport.insecure) => {
                tracing::debug!(registry = %self.registry, error = %e, "https ping failed, trying http");
                let http = format!("http://{}", self.api_host);
                match self.ping(&http).await {
                    Ok(resp)
                        if resp.status().is_success()
                            || resp.status() == StatusCode::UNAUTHORIZED =>
                    {
                        (http, resp)
                    }
                    // Plain HTTP reached something that is not a v2 registry (often the TLS
                    // port refusing plain text): the TLS failure is the useful message.
                    _ => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let scheme = match resp.status() {
            StatusCode::UNAUTHORIZED => {
                let cs: Vec<Challenge> = resp
                    .headers()
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(challenge::parse)
                    .collect();
                Scheme::from_challenges(&cs)
                    .ok_or_else(|| bad(&self.registry, "401 on /v2/ without a usable challenge"))?
            }
            s if s.is_success() => Scheme::Anonymous,
            _ => return Err(self.fail(resp, "ping /v2/").await),
        };
        let base: Uri = base
            .parse()
            .map_err(|e| bad(&self.registry, format!("{e}")))?;
        *reached = Some(Reached {
            base: base.clone(),
            scheme: scheme.clone(),
        });
        Ok((base, scheme))
    }

    async fn ping(&self, base: &str) -> Result<Response<Incoming>> {
        let req = Request::get(format!("{base}/v2/"))
            .header(USER_AGENT, &self.transport.user_agent)
            .body(
                BodySpec::Empty
                    .open()
                    .await
                    .map_err(|e| bad(&self.registry, e.to_string()))?,
            )
            .map_err(|e| bad(&self.registry, e.to_string()))?;
        self.transport.send(req, "ping /v2/").await
    }

    /// Check the credentials the session holds: `/v2/` with Basic, or a token with no scope.
    pub(crate) async fn login(&self) -> Result<()> {
        let (_, scheme) = self.base().await?;
        match scheme {
            Scheme::Anonymous => Ok(()),
            Scheme::Bearer { .. } => self.fetch_token(&scheme, &[]).await.map(|_| ()),
            Scheme::Basic => {
                let resp = self
                    .send(Req::new(Method::GET, "/v2/", "login"), &[])
                    .await?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(self.fail(resp, "login").await)
                }
            }
        }
    }

    async fn auth_header(&self, scheme: &Scheme, scopes: &[String]) -> Result<Option<String>> {
        match scheme {
            Scheme::Anonymous => Ok(None),
            Scheme::Basic => Ok(self.creds.as_ref().map(Credentials::basic_header)),
            Scheme::Bearer { .. } => {
                let key = scopes.join(" ");
                let cached = || {
                    let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
                    tokens
                        .get(&key)
                        .filter(|t| t.refresh_at > Instant::now())
                        .map(|t| t.value.clone())
                };
                if let Some(v) = cached() {
                    return Ok(Some(format!("Bearer {v}")));
                }
                // One fetch at a time: parallel blob transfers that miss the cache together
                // wait for the first one's token instead of each asking for their own.
                let _fetching = self.fetching.lock().await;
                let value = match cached() {
                    Some(v) => v,
                    None => {
                        let t = self.fetch_token(scheme, scopes).await?;
                        let v = t.value.clone();
                        self.tokens
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(key, t);
                        v
                    }
                };
                Ok(Some(format!("Bearer {value}")))
            }
        }
    }

    /// `GET <realm>?service=&scope=&scope=`: Basic credentials when we have them, anonymous
    /// otherwise. A 401 with credentials means they are wrong.
    async fn fetch_token(&self, scheme: &Scheme, scopes: &[String]) -> Result<Token> {
        let Scheme::Bearer { realm, service } = scheme else {
            return Err(bad(
                &self.registry,
                "token requested without a bearer challenge",
            ));
        };
        let mut url = realm.clone();
        if let Some(s) = service {
            url = transport::with_query(&url, "service", s);
        }
        for s in scopes {
            url = transport::with_query(&url, "scope", s);
        }
        let token_err = |reason: String| RegistryError::Token {
            registry: self.registry.clone(),
            realm: realm.clone(),
            reason,
        };
        let mut b = Request::get(&url).header(USER_AGENT, &self.transport.user_agent);
        if let Some(c) = &self.creds {
            b = b.header(AUTHORIZATION, c.basic_header());
        }
        let body = BodySpec::Empty
            .open()
            .await
            .map_err(|e| token_err(e.to_string()))?;
        let req = b.body(body).map_err(|e| token_err(e.to_string()))?;
        let resp = self.transport.send(req, "token request").await?;
        let status = resp.status();
        let host = transport::authority(&url.parse::<Uri>().unwrap_or_default());
        let bytes = transport::read_body(resp.into_body(), 1 << 20, &host, "token request")
            .await?
            .ok_or_else(|| token_err("token response over 1 MiB".into()))?;
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(match self.creds {
                Some(_) => RegistryError::WrongCredentials {
                    registry: self.registry.clone(),
                },
                None => RegistryError::AuthRequired {
                    registry: self.registry.clone(),
                    what: "anonymous token".into(),
                    errors: ApiErrors::parse(&bytes),
                },
            });
        }
        if !status.is_success() {
            return Err(token_err(format!("{status}: {}", ApiErrors::parse(&bytes))));
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&bytes).map_err(|e| token_err(format!("invalid json: {e}")))?;
        tracing::debug!(registry = %self.registry, scopes = ?scopes, "got token");
        parsed
            .into_token(Instant::now())
            .ok_or_else(|| token_err("response holds no token".into()))
    }

    /// Send `req` with credentials for `scopes`. A 401 is answered once: with the scopes the
    /// challenge names added, a fresh token, or the Basic credentials. GET and HEAD follow
    /// redirects; credentials go only to the registry's own origin.
    pub(crate) async fn send(&self, req: Req, scopes: &[String]) -> Result<Response<Incoming>> {
        let (base, mut scheme) = self.base().await?;
        let mut scopes = normalize_scopes(scopes);
        let mut url = transport::resolve(&base, &req.url).map_err(|e| bad(&self.registry, e))?;
        let mut answered_401 = false;
        let mut redirects = 0;
        loop {
            let own = transport::same_origin(&url, &base);
            let auth = if own {
                self.auth_header(&scheme, &scopes).await?
            } else {
                None
            };
            let mut b = Request::builder()
                .method(req.method.clone())
                .uri(url.clone())
                .header(USER_AGENT, &self.transport.user_agent);
            if let Some(a) = &auth {
                b = b.header(AUTHORIZATION, a);
            }
            for (k, v) in &req.headers {
                let v = HeaderValue::from_str(v).map_err(|e| bad(&self.registry, e.to_string()))?;
                b = b.header(k, v);
            }
            if !matches!(req.body, BodySpec::Empty)
                || matches!(req.method, Method::PUT | Method::PATCH | Method::POST)
            {
                b = b.header(hyper::header::CONTENT_LENGTH, req.body.len());
            }
            let body = req.body.open().await.map_err(|e| RegistryError::Source {
                digest: req.what.clone(),
                source: e,
            })?;
            let http_req = b
                .body(body)
                .map_err(|e| bad(&self.registry, e.to_string()))?;
            // An upload's answer comes after its body: only small requests get the head timeout.
            let head_timeout =
                (req.body.len() < UNBOUNDED_BODY).then_some(self.transport.request_timeout);
            let resp = self
                .transport
                .send_with(http_req, &req.what, head_timeout)
                .await?;
            let status = resp.status();

            if status.is_redirection() && matches!(req.method, Method::GET | Method::HEAD) {
                if redirects == MAX_REDIRECTS {
                    return Err(RegistryError::TooManyRedirects {
                        registry: self.registry.clone(),
                        what: req.what.clone(),
                    });
                }
                let loc = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| bad(&self.registry, format!("{status} without Location")))?;
                let next = transport::resolve(&url, loc).map_err(|e| bad(&self.registry, e))?;
                // Plain-HTTP targets still pass Transport::send's loopback/insecure rule.
                url = next;
                redirects += 1;
                continue;
            }

            if status == StatusCode::UNAUTHORIZED && own && !answered_401 {
                answered_401 = true;
                let cs: Vec<Challenge> = resp
                    .headers()
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(challenge::parse)
                    .collect();
                match Scheme::from_challenges(&cs) {
                    Some(Scheme::Basic) if scheme == Scheme::Basic => {
                        // Credentials (or none) were already sent: trying again cannot help.
                        return Ok(resp);
                    }
                    Some(s @ Scheme::Bearer { .. }) => {
                        let mut all = scopes.clone();
                        all.extend(
                            cs.iter()
                                .filter(|c| c.scheme == "bearer")
                                .flat_map(Challenge::scopes),
                        );
                        // The token we sent was refused (expired, revoked, or too narrow):
                        // drop it, and ask for the scopes the challenge names as well.
                        self.forget_token(&scopes);
                        scopes = normalize_scopes(&all);
                        scheme = s;
                        self.forget_token(&scopes);
                    }
                    Some(s) => scheme = s,
                    None => return Ok(resp),
                }
                if let Some(r) = self.reached.lock().await.as_mut() {
                    r.scheme = scheme.clone();
                }
                continue;
            }
            return Ok(resp);
        }
    }

    fn forget_token(&self, scopes: &[String]) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&scopes.join(" "));
    }

    /// Turn a failed response into an error: the status, the registry's error codes, and a
    /// clear word for auth failures.
    pub(crate) async fn fail(&self, resp: Response<Incoming>, what: &str) -> RegistryError {
        let status = resp.status();
        let errors =
            match transport::read_body(resp.into_body(), ERROR_BODY_LIMIT, &self.api_host, what)
                .await
            {
                Ok(Some(b)) => ApiErrors::parse(&b),
                _ => ApiErrors::default(),
            };
        if status == StatusCode::UNAUTHORIZED {
            let basic = matches!(
                self.reached.lock().await.as_ref().map(|r| &r.scheme),
                Some(Scheme::Basic)
            );
            if basic && self.creds.is_some() {
                return RegistryError::WrongCredentials {
                    registry: self.registry.clone(),
                };
            }
            return RegistryError::AuthRequired {
                registry: self.registry.clone(),
                what: what.to_owned(),
                errors,
            };
        }
        if status == StatusCode::FORBIDDEN
            || errors.has_code("DENIED")
            || errors.has_code("UNAUTHORIZED")
        {
            return RegistryError::AuthRequired {
                registry: self.registry.clone(),
                what: what.to_owned(),
                errors,
            };
        }
        RegistryError::Status {
            registry: self.registry.clone(),
            what: what.to_owned(),
            status: status.as_u16(),
            errors,
        }
    }
}
