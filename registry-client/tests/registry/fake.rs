//! A fake registry written here, for what the real one cannot show: a token that stops
//! working (refreshed on 401), and a blob redirect to another host, which must not receive
//! the registry's Authorization header.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use image_store::Digest;
use registry_client::{BlobRef, Client, Credentials, NoProgress, Repository};

use crate::config;
use crate::servers::{full, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_refreshed_and_auth_stays_off_redirects() {
    let blob = bytes::Bytes::from_static(b"content served by the cdn");
    let digest = Digest::of_bytes(&blob);

    // The "CDN" is another loopback address: another host as far as origins go.
    let cdn_auth: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let seen = cdn_auth.clone();
    let body = blob.clone();
    let (cdn, _cdn_task) = serve("127.0.0.2:0", move |req| {
        let (seen, body) = (seen.clone(), body.clone());
        async move {
            seen.lock().unwrap().push(
                req.headers()
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned()),
            );
            hyper::Response::new(full(body))
        }
    })
    .await;

    let issued = Arc::new(AtomicUsize::new(0));
    let token_auth: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let addr_cell: Arc<Mutex<String>> = Arc::default();
    let (issued2, token_auth2, addr2) = (issued.clone(), token_auth.clone(), addr_cell.clone());
    let (addr, _task) = serve("127.0.0.1:0", move |req| {
        let (issued, token_auth, addr) = (issued2.clone(), token_auth2.clone(), addr2.clone());
        async move {
            let realm = format!("http://{}/token", addr.lock().unwrap());
            let challenge = |scope: Option<&str>| {
                let scope = scope.map(|s| format!(",scope=\"{s}\"")).unwrap_or_default();
                hyper::Response::builder()
                    .status(401)
                    .header("www-authenticate", format!("Bearer realm=\"{realm}\",service=\"fake\"{scope}"))
                    .body(full(r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#))
                    .unwrap()
            };
            let auth = req.headers().get("authorization").map(|v| v.to_str().unwrap().to_owned());
            let path = req.uri().path().to_owned();
            if path == "/token" {
                token_auth.lock().unwrap().push(auth);
                let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                return hyper::Response::new(full(format!(r#"{{"access_token":"t{n}","expires_in":3600}}"#)));
            }
            if path == "/v2/" {
                return challenge(None);
            }
            // The first token "expires" at once: only t2 and later are accepted.
            let fresh = auth.as_deref().is_some_and(|a| a.starts_with("Bearer t") && a != "Bearer t1");
            if !fresh {
                return challenge(Some("repository:fake/repo:pull"));
            }
            hyper::Response::builder()
                .status(307)
                .header("location", format!("http://{cdn}/blob"))
                .body(full(""))
                .unwrap()
        }
    })
    .await;
    *addr_cell.lock().unwrap() = addr.to_string();

    let client = Client::new(config());
    client.set_credentials(&addr.to_string(), Some(Credentials::new("u", "p")));
    let repo = Repository::new(addr.to_string(), "fake/repo");
    let got = client
        .pull_blob(
            &repo,
            &BlobRef {
                digest,
                size: Some(blob.len() as u64),
            },
            Vec::new(),
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(got, blob.to_vec());
    assert_eq!(
        issued.load(Ordering::SeqCst),
        2,
        "one token, then a fresh one after the 401"
    );
    assert!(token_auth
        .lock()
        .unwrap()
        .iter()
        .all(|a| a.as_deref() == Some("Basic dTpw")));
    assert_eq!(
        *cdn_auth.lock().unwrap(),
        vec![None],
        "Authorization leaked to the redirect target"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema1_oversized_and_lying_manifests_are_refused() {
    let (addr, _task) = serve("127.0.0.1:0", |req| async move {
        let path = req.uri().path().to_owned();
        let accept = req
            .headers()
            .get("accept")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let resp = hyper::Response::builder();
        if path == "/v2/" {
            return resp.body(full("{}")).unwrap();
        }
        // Every manifest GET must carry the full Accept list.
        assert!(
            accept.contains("application/vnd.oci.image.index.v1+json"),
            "{accept}"
        );
        assert!(
            accept.contains("application/vnd.docker.distribution.manifest.v2+json"),
            "{accept}"
        );
        match path.rsplit('/').next().unwrap() {
            "schema1" => resp
                .header(
                    "content-type",
                    "application/vnd.docker.distribution.manifest.v1+prettyjws",
                )
                .body(full(
                    r#"{"schemaVersion":1,"name":"x","tag":"schema1","fsLayers":[]}"#,
                ))
                .unwrap(),
            "huge" => resp
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .body(full(vec![b' '; 5 << 20]))
                .unwrap(),
            _ => resp
                .header("content-type", "application/vnd.oci.image.index.v1+json")
                .header(
                    "docker-content-digest",
                    Digest::of_bytes(b"something else").to_string(),
                )
                .body(full(r#"{"schemaVersion":2,"manifests":[]}"#))
                .unwrap(),
        }
    })
    .await;
    let client = Client::new(config());
    let repo = Repository::new(addr.to_string(), "fake/manifests");
    let err = client.get_manifest(&repo, "schema1").await.unwrap_err();
    assert!(
        matches!(err, registry_client::RegistryError::Schema1 { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("schema 1 manifests"), "{err}");
    let err = client.get_manifest(&repo, "huge").await.unwrap_err();
    assert!(
        matches!(err, registry_client::RegistryError::ManifestTooLarge { .. }),
        "{err:?}"
    );
    let err = client.get_manifest(&repo, "lying").await.unwrap_err();
    assert!(
        matches!(err, registry_client::RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
}
