//! Discovery: tags, the catalog (both paginated through `Link: <...>; rel="next"`), and
//! search: Docker Hub's v1 search API, or the catalog filtered by name anywhere else.

use hyper::header::{ACCEPT, LINK, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;

use crate::auth::{pull_scope, CATALOG_SCOPE};
use crate::client::{api_host, Client, Repository, DOCKER_HUB_API_HOST};
use crate::error::{ApiErrors, RegistryError, Result};
use crate::session::Req;
use crate::transport::{self, BodySpec};

const LIST_BODY_LIMIT: usize = 16 << 20;

/// Docker Hub's search endpoint (moby `registry/search_session.go`).
pub const HUB_SEARCH_URL: &str = "https://index.docker.io/v1/search";

/// The `rel="next"` target of a `Link` header, if any.
pub fn next_link(header: &str) -> Option<String> {
    for part in header.split(',') {
        let mut pieces = part.split(';');
        let target = pieces.next()?.trim();
        let target = target.strip_prefix('<')?.strip_suffix('>')?;
        let is_next = pieces.any(|p| {
            let p = p.trim();
            p.strip_prefix("rel=")
                .is_some_and(|v| v.trim_matches('"').split_whitespace().any(|r| r == "next"))
        });
        if is_next {
            return Some(target.to_owned());
        }
    }
    None
}

/// One search hit, in the shape Docker's `/images/search` returns.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct SearchResult {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub star_count: u64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub is_automated: bool,
}

/// The Docker Hub search URL for `term`, `limit` clamped to the API's 1..=100.
pub fn hub_search_url(term: &str, limit: usize) -> String {
    let url = transport::with_query(HUB_SEARCH_URL, "q", term);
    transport::with_query(&url, "n", &limit.clamp(1, 100).to_string())
}

impl Client {
    /// Every tag of a repository, following pagination.
    pub async fn tags(&self, repo: &Repository) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let pages: Vec<Page> = self
            .paginate(
                &repo.registry,
                format!("/v2/{}/tags/list", repo.name),
                &[pull_scope(&repo.name)],
                "tags list",
            )
            .await
            .map_err(|e| match e {
                RegistryError::Status { status: 404, .. } => RegistryError::NameUnknown {
                    registry: repo.registry.clone(),
                    repository: repo.name.clone(),
                },
                e => e,
            })?;
        Ok(pages
            .into_iter()
            .flat_map(|p| p.tags.unwrap_or_default())
            .collect())
    }

    /// Every repository name of a registry (`/v2/_catalog`), `page_size` names per request.
    pub async fn catalog(&self, registry: &str, page_size: usize) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            repositories: Vec<String>,
        }
        let first = format!("/v2/_catalog?n={}", page_size.max(1));
        let pages: Vec<Page> = self
            .paginate(registry, first, &[CATALOG_SCOPE.to_owned()], "catalog")
            .await?;
        Ok(pages.into_iter().flat_map(|p| p.repositories).collect())
    }

    async fn paginate<T: for<'de> Deserialize<'de>>(
        &self,
        registry: &str,
        first: String,
        scopes: &[String],
        what: &str,
    ) -> Result<Vec<T>> {
        let session = self.session(registry);
        let mut next = Some(first);
        let mut pages = Vec::new();
        // A registry that keeps answering with a Link to itself must not loop forever.
        let mut seen = std::collections::HashSet::new();
        while let Some(url) = next.take() {
            if !seen.insert(url.clone()) {
                break;
            }
            let resp = self
                .retrying(what, || {
                    session.send(
                        Req::new(Method::GET, url.clone(), what).header(ACCEPT, "application/json"),
                        scopes,
                    )
                })
                .await?;
            if !resp.status().is_success() {
                return Err(session.fail(resp, what).await);
            }
            next = resp
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let body =
                transport::read_body(resp.into_body(), LIST_BODY_LIMIT, &session.api_host, what)
                    .await?
                    .ok_or_else(|| RegistryError::InvalidResponse {
                        registry: registry.to_owned(),
                        reason: format!("{what}: page over {LIST_BODY_LIMIT} bytes"),
                    })?;
            pages.push(serde_json::from_slice(&body).map_err(|e| {
                RegistryError::InvalidResponse {
                    registry: registry.to_owned(),
                    reason: format!("{what}: {e}"),
                }
            })?);
        }
        Ok(pages)
    }

    /// Search `registry` for `term`: Docker Hub through its v1 search API, any other registry
    /// by matching catalog names that contain `term`.
    pub async fn search(
        &self,
        registry: &str,
        term: &str,
        limit: usize,
    ) -> Result<Vec<SearchResult>> {
        if api_host(registry) == DOCKER_HUB_API_HOST {
            return self.hub_search(term, limit).await;
        }
        let names = self.catalog(registry, 100).await?;
        Ok(names
            .into_iter()
            .filter(|n| n.contains(term))
            .take(limit)
            .map(|name| SearchResult {
                name: format!("{registry}/{name}"),
                description: String::new(),
                star_count: 0,
                is_official: false,
                is_automated: false,
            })
            .collect())
    }

    async fn hub_search(&self, term: &str, limit: usize) -> Result<Vec<SearchResult>> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            results: Vec<SearchResult>,
        }
        let url = hub_search_url(term, limit);
        let registry = "docker.io".to_owned();
        let bad = |reason: String| RegistryError::InvalidResponse {
            registry: registry.clone(),
            reason,
        };
        let body = BodySpec::Empty
            .open()
            .await
            .map_err(|e| bad(e.to_string()))?;
        let req = Request::get(&url)
            .header(USER_AGENT, &self.inner.transport.user_agent)
            .body(body)
            .map_err(|e| bad(e.to_string()))?;
        let resp = self.inner.transport.send(req, "search").await?;
        let status = resp.status();
        let bytes = transport::read_body(
            resp.into_body(),
            LIST_BODY_LIMIT,
            "index.docker.io",
            "search",
        )
        .await?
        .ok_or_else(|| bad("search answer too large".into()))?;
        if status != StatusCode::OK {
            return Err(RegistryError::Status {
                registry,
                what: "search".into(),
                status: status.as_u16(),
                errors: ApiErrors::parse(&bytes),
            });
        }
        let a: Answer = serde_json::from_slice(&bytes).map_err(|e| bad(format!("search: {e}")))?;
        Ok(a.results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/_catalog?last=test%2Finclude&n=2>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=test%2Finclude&n=2")
        );
        assert_eq!(
            next_link(r#"<https://r.example/v2/a/tags/list?n=1&last=b>; rel=next"#).as_deref(),
            Some("https://r.example/v2/a/tags/list?n=1&last=b")
        );
        assert_eq!(
            next_link(r#"</prev>; rel="prev", </next>; title="x"; rel="next""#).as_deref(),
            Some("/next")
        );
        assert_eq!(next_link(r#"</prev>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn hub_search_request() {
        assert_eq!(
            hub_search_url("my app", 500),
            "https://index.docker.io/v1/search?q=my%20app&n=100"
        );
        assert_eq!(
            hub_search_url("busybox", 0),
            "https://index.docker.io/v1/search?q=busybox&n=1"
        );
    }
}
