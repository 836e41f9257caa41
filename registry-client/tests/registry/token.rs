//! distribution's token auth with a real registry and a token issuer written here: the Bearer
//! flow, several scopes for a mount, the catalog scope, anonymous tokens and the cache.

use std::sync::atomic::Ordering;

use registry_client::{
    BlobRef, BlobSource, Client, Credentials, NoProgress, PushedBlob, RegistryError, Repository,
};

use crate::harness::{image, Auth, Registry};
use crate::servers::TokenServer;
use crate::{config, push_image};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_flow_against_a_token_auth_registry() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = TokenServer::start(dir.path(), &[("alice", "wonder")]).await;
    let reg = Registry::start(Auth::Token {
        realm: &tokens.realm,
        signing_cert: &tokens.signing_cert,
    });
    let client = Client::new(config());
    client
        .login(&reg.host, Credentials::new("alice", "wonder"))
        .await
        .unwrap();

    let a = Repository::new(&reg.host, "public/app");
    let img = image("amd64", b"token auth");
    let before = tokens.requests.load(Ordering::SeqCst);
    push_image(&client, &a, "v1", &img).await;
    let pushed = tokens.requests.load(Ordering::SeqCst) - before;
    // One token for pull (HEAD checks) and one for pull,push: cached per scope set, not
    // fetched per request.
    assert_eq!(pushed, 2, "{pushed} token requests for one push");

    // Cross-repository mount: one token for two repositories.
    let b = Repository::new(&reg.host, "private/copy");
    let (d, bytes) = img.layers[0].clone();
    let out = client
        .push_blob(
            &b,
            &d,
            &BlobSource::Bytes(bytes),
            Some("public/app"),
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(out, PushedBlob::Mounted);
    let scopes = tokens.scopes.lock().unwrap().clone();
    assert!(
        scopes.iter().any(
            |s| s.contains(&"repository:private/copy:pull,push".to_owned())
                && s.contains(&"repository:public/app:pull".to_owned())
        ),
        "{scopes:?}"
    );

    let names = client.catalog(&reg.host, 100).await.unwrap();
    assert_eq!(names, ["private/copy", "public/app"]);
    assert!(tokens
        .scopes
        .lock()
        .unwrap()
        .iter()
        .any(|s| s == &["registry:catalog:*".to_owned()]));

    // Anonymous: a token that allows pulling public/*, and nothing else.
    let anon = Client::new(config());
    let blob = BlobRef {
        digest: img.config_digest.clone(),
        size: Some(img.config.len() as u64),
    };
    let got = anon
        .pull_blob(&a, &blob, Vec::new(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(got, img.config.to_vec());
    let err = anon.get_manifest(&b, "v1").await.unwrap_err();
    assert!(matches!(err, RegistryError::AuthRequired { .. }), "{err:?}");

    // Wrong password: the token server refuses it, and the error says so.
    let wrong = Client::new(config());
    let err = wrong
        .login(&reg.host, Credentials::new("alice", "nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::WrongCredentials { .. }),
        "{err:?}"
    );
}
