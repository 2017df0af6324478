//! The container image's binary: built as the Dockerfile builds it (`make static`), it runs with
//! no libraries and no environment, and talks TLS to the API server.

use crate::harness::{Run, TestNamespace, repo_path};

fn static_binary() -> std::path::PathBuf {
    std::env::var_os("STAGECTL_STATIC_BINARY")
        .map(std::path::PathBuf::from)
        .expect("STAGECTL_STATIC_BINARY is not set: run through `make test`, which builds it")
}

/// Whether an ELF executable asks for a dynamic loader (a PT_INTERP program header).
fn needs_a_loader(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "an ELF file");
    assert_eq!(elf[4], 2, "64-bit");
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let program_headers = u64::from_le_bytes(elf[32..40].try_into().unwrap()) as usize;
    let (entry_size, count) = (u16_at(54), u16_at(56));
    (0..count).any(|i| {
        let at = program_headers + i * entry_size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3
    })
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn the_static_binary_runs_alone_and_speaks_tls_to_the_api_server() {
    let binary = static_binary();
    let elf = std::fs::read(&binary).unwrap();
    assert!(!needs_a_loader(&elf), "{} is not static", binary.display());
    let own = std::fs::read(env!("CARGO_BIN_EXE_stagectl")).unwrap();
    assert!(
        needs_a_loader(&own),
        "the check can tell a dynamic binary too"
    );

    // As in a FROM scratch image: a root with nothing but the binary and a kubeconfig, and an
    // empty environment. chroot needs root, as CI and the developer machines have.
    let ns = TestNamespace::new("static-binary").await;
    let root = ns.scratch("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(&binary, root.join("stagectl")).unwrap();
    std::fs::copy(&ns.kubeconfig, root.join("kubeconfig")).unwrap();
    let run = |args: &[&str]| {
        let mut command = tokio::process::Command::new("/usr/sbin/chroot");
        command.env_clear().arg(&root).arg("/stagectl").args(args);
        Run::of(command)
    };
    let version = run(&["--version"]).await;
    version.assert_code(0);
    assert_eq!(
        version.stdout.trim(),
        format!("stagectl {}", env!("CARGO_PKG_VERSION"))
    );

    let workflow = ns.create_play().await;
    let as_in_image = ["--kubeconfig", "/kubeconfig", "-n", &ns.name];
    let set = [
        &as_in_image[..],
        &["set", "waiting-pr-created", "--workflow", &workflow],
    ]
    .concat();
    run(&set).await.assert_code(0);
    let get = run(&[&as_in_image[..], &["get", "-o", "name"]].concat()).await;
    get.assert_code(0);
    assert_eq!(
        get.stdout.trim(),
        format!("workflow.argoproj.io/{workflow}")
    );

    // A server named by host name, as most kubeconfigs have it, resolved with what a container
    // runtime puts in an image (/etc/hosts, /etc/resolv.conf): the static glibc needs no NSS
    // modules for that. Without the files, the name does not resolve.
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    std::fs::write(root.join("etc/resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
    let kubeconfig = std::fs::read_to_string(&ns.kubeconfig).unwrap();
    assert!(kubeconfig.contains("https://127.0.0.1:"), "{kubeconfig}");
    std::fs::write(
        root.join("kubeconfig"),
        kubeconfig.replace("https://127.0.0.1:", "https://localhost:"),
    )
    .unwrap();
    let get_by_name = [&as_in_image[..], &["get", "-o", "name", "--timeout", "2s"]].concat();
    let by_name = run(&get_by_name).await;
    by_name.assert_code(0);
    assert_eq!(by_name.stdout.trim(), get.stdout.trim());
    std::fs::remove_file(root.join("etc/hosts")).unwrap();
    let unresolved = run(&get_by_name).await;
    assert_ne!(unresolved.code, 0, "{}", unresolved.stdout);
}

#[test]
fn the_dockerfile_builds_that_binary_into_a_minimal_non_root_image() {
    let lock = std::fs::read_to_string(repo_path("Cargo.lock")).unwrap();
    for openssl in ["name = \"openssl\"", "name = \"openssl-sys\""] {
        assert!(!lock.contains(openssl), "TLS is rustls, no OpenSSL");
    }
    let dockerfile = std::fs::read_to_string(repo_path("Dockerfile")).unwrap();
    let makefile = std::fs::read_to_string(repo_path("Makefile")).unwrap();
    for shared in [
        "RUSTFLAGS=\"-C target-feature=+crt-static\"",
        "cargo build --release --locked --target",
    ] {
        assert!(dockerfile.contains(shared), "Dockerfile: {shared}");
        assert!(makefile.contains(shared), "Makefile: {shared}");
    }
    let last_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    assert!(
        last_stage.starts_with("gcr.io/distroless/static"),
        "{last_stage}"
    );
    assert!(
        last_stage.contains("USER 65532:65532"),
        "the distroless nonroot user"
    );
    assert!(
        !last_stage.contains("RUN "),
        "the final image runs nothing at build time"
    );
}
