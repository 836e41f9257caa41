//! TLS (CA from a certs.d directory) + htpasswd Basic auth, and config.json login.

use registry_client::{
    credentials, Client, ClientConfig, Credentials, Platform, RegistryError, Repository,
};

use crate::harness::{certs_d, image, make_certs, Auth, Registry};
use crate::{config, push_image};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_certs_d_and_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let reg = Registry::start(Auth::TlsBasic {
        certs: &certs,
        users: &[("tester", "s3cret")],
    });
    let repo = Repository::new(&reg.host, "secure/app");

    // Without the CA the server's certificate is not trusted, and plain HTTP to the TLS port
    // does not hide that.
    let untrusted = Client::new(config());
    let err = untrusted.ping(&reg.host).await.unwrap_err();
    let msg = format!("{err} {:?}", std::error::Error::source(&err));
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");

    let trusted = ClientConfig {
        certs_dir: Some(certs_d(dir.path(), &reg.host, &certs.ca)),
        ..config()
    };
    // Anonymous: the registry wants credentials.
    let anon = Client::new(trusted.clone());
    let err = anon.get_manifest(&repo, "v1").await.unwrap_err();
    assert!(matches!(err, RegistryError::AuthRequired { .. }), "{err:?}");

    // Wrong password: said plainly, at login and on use.
    let wrong = Client::new(trusted.clone());
    let err = wrong
        .login(&reg.host, Credentials::new("tester", "nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::WrongCredentials { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("incorrect username or password"),
        "{err}"
    );
    wrong.set_credentials(&reg.host, Some(Credentials::new("tester", "nope")));
    let err = wrong.get_manifest(&repo, "v1").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::WrongCredentials { .. }),
        "{err:?}"
    );

    // login stores the credentials in config.json only when they work
    let cfg_path = dir.path().join("docker/config.json");
    let client = Client::new(trusted.clone());
    let err = credentials::login(
        &client,
        &cfg_path,
        &reg.host,
        Credentials::new("tester", "bad"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RegistryError::WrongCredentials { .. }));
    assert!(!cfg_path.exists());
    credentials::login(
        &client,
        &cfg_path,
        &reg.host,
        Credentials::new("tester", "s3cret"),
    )
    .await
    .unwrap();

    // A fresh client with the stored credentials pushes and pulls over TLS.
    let fresh = Client::new(trusted);
    let stored = credentials::DockerConfig::load(&cfg_path)
        .unwrap()
        .get(&reg.host)
        .unwrap();
    fresh.set_credentials(&reg.host, stored);
    let img = image("amd64", b"over tls");
    push_image(&fresh, &repo, "v1", &img).await;
    let got = fresh
        .resolve_image(&repo, "v1", &Platform::host())
        .await
        .unwrap();
    assert_eq!(got.manifest.digest, img.manifest_digest);

    assert!(credentials::logout(&cfg_path, &reg.host).unwrap());
    assert!(!credentials::logout(&cfg_path, &reg.host).unwrap());
}
