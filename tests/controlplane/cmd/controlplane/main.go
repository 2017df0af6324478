// controlplane runs a real kube-apiserver and an embedded etcd in one process, for stagectl's
// tests, demo and benchmarks. Everything it needs to come back as the same cluster — etcd data,
// PKI, ports — lives in --state-dir, so a restart on the same directory keeps the objects and the
// address, and an existing kubeconfig keeps working.
//
// It is test infrastructure: use it through tests/controlplane/start and stop, not directly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("controlplane: ")
	// A suite runs several of these servers at once on a small machine with memory to spare; at
	// Go's default pace (GOGC=100) collecting garbage took a quarter of a fresh start's CPU
	// (16.7 CPU-s, 12.7 at 400, for twice the memory). GOGC in the environment still decides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}

	var stateDir string
	var crdDirs stringList
	flag.StringVar(&stateDir, "state-dir", "", "directory for etcd data, PKI, ports and the kubeconfig (required)")
	flag.Var(&crdDirs, "crds", "directory (or file) of CustomResourceDefinition manifests to server-side apply once ready (repeatable)")
	readyTimeout := flag.Duration("ready-timeout", 120*time.Second, "how long to wait for the API server to become ready")
	flag.Parse()
	if stateDir == "" {
		log.Fatal("--state-dir is required")
	}
	if err := run(stateDir, crdDirs, *readyTimeout); err != nil {
		log.Fatal(err)
	}
}

func run(stateDir string, crdDirs []string, readyTimeout time.Duration) error {
	stateDir, err := filepath.Abs(stateDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	// The pid file is this process's own word, so that start and stop never mistake a launcher
	// or a recycled pid for the server.
	if err := writeFileAtomic(filepath.Join(stateDir, "pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return err
	}
	readyFile := filepath.Join(stateDir, "ready")
	// A ready file left by a killed predecessor would make start report readiness too early.
	if err := os.Remove(readyFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}

	pki, err := ensurePKI(filepath.Join(stateDir, "pki"))
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	ports, err := ensurePorts(filepath.Join(stateDir, "ports.json"))
	if err != nil {
		return fmt.Errorf("ports: %w", err)
	}

	etcd, err := startEtcd(filepath.Join(stateDir, "etcd"), ports)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer etcd.Close()

	auditPolicy := filepath.Join(stateDir, "audit-policy.yaml")
	if err := writeFileAtomic(auditPolicy, []byte(auditPolicyYAML), 0o600); err != nil {
		return err
	}

	// NewAPIServerCommand installs the SIGTERM/SIGINT handler itself (it may be set up only once
	// per process), so the API server's return is this process's signal to shut down.
	// The clients are built before the API server starts: building one reads klog's global
	// logger, which the API server's command sets up as it starts, and a client built meanwhile
	// met it half set (a nil pointer in klog.Background, once in a make test).
	admin, err := newAdminClients(pki, ports.Backend)
	if err != nil {
		return err
	}
	apiserver := app.NewAPIServerCommand()
	apiserver.SetArgs(apiserverArgs(stateDir, pki, ports))
	apiserverDone := make(chan error, 1)
	go func() { apiserverDone <- apiserver.Execute() }()

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	// The clients' port opens the moment the server's own does, as it would without the proxy:
	// a restarted server that accepts connections before its caches are filled is part of what
	// the tests meet.
	startLatencyProxy(ctx, fmt.Sprintf("127.0.0.1:%d", ports.APIServer),
		fmt.Sprintf("127.0.0.1:%d", ports.Backend), filepath.Join(stateDir, "latency"))
	if err := waitReady(ctx, admin, apiserverDone); err != nil {
		return err
	}
	if err := applyCRDs(ctx, admin, crdDirs); err != nil {
		return fmt.Errorf("CRDs: %w", err)
	}
	// The namespace controller's watches are requests to this very server, which waits for its
	// requests to end before it stops: they end first, when the signal that stops it comes.
	controllers, stopControllers := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stopControllers()
	if err := startNamespaceController(controllers, adminRESTConfig(pki, ports.Backend)); err != nil {
		return fmt.Errorf("namespace controller: %w", err)
	}
	kubeconfig := filepath.Join(stateDir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, pki, ports.APIServer); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	if err := writeFileAtomic(readyFile, []byte(kubeconfig+"\n"), 0o600); err != nil {
		return err
	}
	log.Printf("ready: https://127.0.0.1:%d, kubeconfig %s", ports.APIServer, kubeconfig)

	err = <-apiserverDone
	_ = os.Remove(readyFile)
	log.Printf("API server stopped (%v); stopping etcd", err)
	return err
}

func apiserverArgs(stateDir string, pki *pkiFiles, ports *portSet) []string {
	return []string{
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", ports.Backend),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", ports.EtcdClient),
		"--cert-dir=" + filepath.Join(stateDir, "pki"),
		"--tls-cert-file=" + pki.ServingCert,
		"--tls-private-key-file=" + pki.ServingKey,
		"--client-ca-file=" + pki.CACert,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki.ServiceAccountPub,
		"--service-account-signing-key-file=" + pki.ServiceAccountKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		// There is no controller-manager to create each namespace's default ServiceAccount, and the
		// ServiceAccount admission plugin would refuse every pod without it.
		"--disable-admission-plugins=ServiceAccount",
		// STAGECTL_CONTROLPLANE_PROFILING=1 serves Go's /debug/pprof/ on the API server's port
		// (to the admin's certificate): the profile covers this whole process, etcd included,
		// which is where a slow suite's CPU goes.
		"--profiling=" + strconv.FormatBool(os.Getenv("STAGECTL_CONTROLPLANE_PROFILING") == "1"),
		// On SIGTERM the server ends its watches (clients re-establish them elsewhere, as after a
		// rolling restart) rather than wait for them: with the Argo controller's and the tests'
		// watches open, a stop waited its whole 30 s and was killed.
		"--shutdown-watch-termination-grace-period=2s",
		// Tests count the requests a stagectl process makes from the server's own record.
		"--audit-policy-file=" + filepath.Join(stateDir, "audit-policy.yaml"),
		"--audit-log-path=" + filepath.Join(stateDir, "audit.log"),
		"--audit-log-format=json",
		"--audit-log-mode=blocking",
		"--audit-log-maxsize=512",
	}
}

// auditPolicyYAML records, at Metadata level, every request for Argo's resources and for
// Events: who asked, which verb, which object, which status code; a Workflow's creation and
// every patch of one with its body, so that what was written can be told from the log alone.
// Those writes are logged when they arrive too (RequestReceived, without a body): a server
// killed between committing a write and logging its answer leaves that entry alone, the only
// trace of a write that may have been applied.
const auditPolicyYAML = `apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: Request
    verbs: [create, patch]
    resources:
      - group: argoproj.io
        resources: [workflows]
  - level: Metadata
    omitStages: [RequestReceived]
    resources:
      - group: argoproj.io
      - group: events.k8s.io
      - group: ""
        resources: [events]
  - level: None
`
