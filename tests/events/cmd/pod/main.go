// pod runs one process the way a Kubernetes pod would see it, without a kubelet or a container
// runtime: in a network namespace of its own (so every Argo Events process can bind its fixed
// metrics port, 7777, and its HTTP ports) and a mount namespace of its own, where files appear at
// the absolute paths Argo Events reads (/argo-events/secrets/<name>/<key>,
// /etc/eventbus/auth/auth.yaml) and /tmp is private. Nothing is written on the host outside
// -state. Test infrastructure, not part of stagectl.
//
//	pod -state DIR [-file /abs/path=SOURCE]... [-connect PORT]... [-publish HOST:PORT=PORT]... -- COMMAND ARGS...
//
//	-file     SOURCE (a file or a directory) appears at /abs/path inside the pod
//	-connect  127.0.0.1:PORT inside the pod reaches 127.0.0.1:PORT on the host (the NATS server,
//	          the kube-apiserver)
//	-publish  HOST:PORT on the host reaches 127.0.0.1:PORT inside the pod (the EventSource's
//	          webhook server); a connection made before the process listens is closed, as a
//	          Service with no ready endpoint refuses it
//
// Connections cross the namespace boundary through Unix sockets in DIR/sockets, which the pod
// sees at /.pod. The process gets SIGKILL when pod dies, however pod dies. Exit status: the
// process's.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Where the pod sees DIR/sockets: short, because a Unix socket path has at most 107 bytes.
const socketsInPod = "/.pod"

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	state    string
	files    list
	connects list
	publish  list
	command  []string
}

func parse(args []string) (options, error) {
	var o options
	flags := flag.NewFlagSet("pod", flag.ContinueOnError)
	flags.StringVar(&o.state, "state", "", "the pod's directory: its root, /tmp and sockets")
	flags.Var(&o.files, "file", "/abs/path=SOURCE, repeatable")
	flags.Var(&o.connects, "connect", "PORT, repeatable")
	flags.Var(&o.publish, "publish", "HOST:PORT=PORT, repeatable")
	if err := flags.Parse(args); err != nil {
		return o, err
	}
	o.command = flags.Args()
	if o.state == "" || len(o.command) == 0 {
		return o, errors.New("give -state DIR and a command after --")
	}
	state, err := filepath.Abs(o.state)
	o.state = state
	return o, err
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "inside" {
		o, err := parse(os.Args[2:])
		if err == nil {
			err = inside(o)
		}
		fail(err)
	}
	o, err := parse(os.Args[1:])
	if err == nil {
		err = outside(o)
	}
	fail(err)
}

func fail(err error) {
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		if status, ok := exit.Sys().(syscall.WaitStatus); ok && status.Signaled() {
			os.Exit(128 + int(status.Signal()))
		}
		os.Exit(exit.ExitCode())
	case err != nil:
		fmt.Fprintln(os.Stderr, "pod:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

// outside relays the host's side of each port and starts `pod inside` in new namespaces.
func outside(o options) error {
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	sockets := filepath.Join(o.state, "sockets")
	if err := os.RemoveAll(sockets); err != nil {
		return err
	}
	if err := os.MkdirAll(sockets, 0o700); err != nil {
		return err
	}
	// Socket paths relative to the sockets directory keep under the length limit wherever the
	// state lives.
	if err := os.Chdir(sockets); err != nil {
		return err
	}
	for _, port := range o.connects {
		listener, err := net.Listen("unix", "connect-"+port)
		if err != nil {
			return err
		}
		go relay(listener, "tcp", "127.0.0.1:"+port)
	}
	for _, spec := range o.publish {
		host, port, ok := strings.Cut(spec, "=")
		if !ok {
			return fmt.Errorf("-publish %q: want HOST:PORT=PORT", spec)
		}
		listener, err := net.Listen("tcp", host)
		if err != nil {
			return err
		}
		go relay(listener, "unix", "publish-"+port)
	}

	// Pdeathsig belongs to the thread that started the child: keep this one.
	runtime.LockOSThread()
	inner := exec.Command("/proc/self/exe", append([]string{"inside"}, os.Args[1:]...)...)
	inner.Stdin, inner.Stdout, inner.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Where pod was started, so that relative arguments mean the same inside.
	inner.Dir = cwd
	inner.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWNET,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := inner.Start(); err != nil {
		return fmt.Errorf("start the pod's namespaces: %w", err)
	}
	forwardSignals(inner.Process)
	return inner.Wait()
}

// inside builds the pod's filesystem and loopback, relays the pod's side of each port, and runs
// the command.
func inside(o options) error {
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	root := filepath.Join(o.state, "root")
	tmp := filepath.Join(o.state, "tmp")
	for _, dir := range []string{root, tmp} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	overlays := map[string]string{"/tmp": tmp, socketsInPod: filepath.Join(o.state, "sockets")}
	for _, spec := range o.files {
		target, source, ok := strings.Cut(spec, "=")
		if !ok || !filepath.IsAbs(target) {
			return fmt.Errorf("-file %q: want /abs/path=SOURCE", spec)
		}
		overlays[filepath.Clean(target)] = source
	}
	if err := buildRoot(root, overlays); err != nil {
		return err
	}
	if err := unix.Chroot(root); err != nil {
		return err
	}
	if err := os.Chdir(cwd); err != nil {
		return err
	}
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}

	for _, port := range o.connects {
		listener, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			return err
		}
		go relay(listener, "unix", filepath.Join(socketsInPod, "connect-"+port))
	}
	for _, spec := range o.publish {
		_, port, _ := strings.Cut(spec, "=")
		listener, err := net.Listen("unix", filepath.Join(socketsInPod, "publish-"+port))
		if err != nil {
			return err
		}
		go relay(listener, "tcp", "127.0.0.1:"+port)
	}

	runtime.LockOSThread()
	command := exec.Command(o.command[0], o.command[1:]...)
	command.Stdin, command.Stdout, command.Stderr = os.Stdin, os.Stdout, os.Stderr
	command.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := command.Start(); err != nil {
		return err
	}
	forwardSignals(command.Process)
	return command.Wait()
}

// buildRoot makes root a tree that looks like the host's / except at the overlays: every
// directory on the way to an overlay is a tmpfs holding bind mounts of the host directory's
// entries, so an overlay at a path the host lacks (/argo-events) needs no change on the host.
func buildRoot(root string, overlays map[string]string) error {
	synthetic := map[string]bool{"/": true}
	for target := range overlays {
		for dir := filepath.Dir(target); ; dir = filepath.Dir(dir) {
			synthetic[dir] = true
			if dir == "/" {
				break
			}
		}
	}
	dirs := make([]string, 0, len(synthetic))
	for dir := range synthetic {
		dirs = append(dirs, dir)
	}
	// Parents before children.
	sort.Slice(dirs, func(i, j int) bool {
		return strings.Count(dirs[i], "/") < strings.Count(dirs[j], "/") || dirs[i] == "/"
	})
	for _, dir := range dirs {
		inRoot := filepath.Join(root, dir)
		if err := os.MkdirAll(inRoot, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", inRoot, "tmpfs", 0, "mode=0755"); err != nil {
			return fmt.Errorf("tmpfs on %s: %w", inRoot, err)
		}
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for _, entry := range entries {
			path := filepath.Join(dir, entry.Name())
			if synthetic[path] || overlays[path] != "" {
				continue
			}
			if err := bindEntry(path, filepath.Join(root, path)); err != nil {
				return err
			}
		}
	}
	for target, source := range overlays {
		if err := bindEntry(source, filepath.Join(root, target)); err != nil {
			return fmt.Errorf("%s: %w", target, err)
		}
	}
	return nil
}

// bindEntry makes target show source: a symbolic link is copied, anything else bind-mounted.
func bindEntry(source, target string) error {
	info, err := os.Lstat(source)
	if err != nil {
		return err
	}
	switch {
	case info.Mode()&os.ModeSymlink != 0:
		link, err := os.Readlink(source)
		if err != nil {
			return err
		}
		return os.Symlink(link, target)
	case info.IsDir():
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
	default:
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(target, nil, 0o644); err != nil {
			return err
		}
	}
	return unix.Mount(source, target, "", unix.MS_BIND|unix.MS_REC, "")
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	request, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, request); err != nil {
		return err
	}
	request.SetUint16(request.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, request)
}

// relay copies each accepted connection to a new connection to address, both ways.
func relay(listener net.Listener, network, address string) {
	for {
		accepted, err := listener.Accept()
		if err != nil {
			return
		}
		go func() {
			defer accepted.Close()
			dialed, err := net.Dial(network, address)
			if err != nil {
				return
			}
			defer dialed.Close()
			done := make(chan struct{}, 2)
			pipe := func(to, from net.Conn) {
				_, _ = io.Copy(to, from)
				if closer, ok := to.(interface{ CloseWrite() error }); ok {
					_ = closer.CloseWrite()
				}
				done <- struct{}{}
			}
			go pipe(dialed, accepted)
			go pipe(accepted, dialed)
			<-done
			<-done
		}()
	}
}

func forwardSignals(process *os.Process) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for s := range signals {
			_ = process.Signal(s)
		}
	}()
}
