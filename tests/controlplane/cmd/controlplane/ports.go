package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// portSet is kept in the state directory: the API server comes back on the same port after a
// restart, so clients holding the old kubeconfig (a running test, a workflow step) reconnect, and
// etcd's member keeps the peer URL stored in its data.
type portSet struct {
	// APIServer is the address clients use: the latency proxy, which passes to Backend, the
	// server's own port.
	APIServer  int `json:"apiserver"`
	Backend    int `json:"backend"`
	EtcdClient int `json:"etcdClient"`
	EtcdPeer   int `json:"etcdPeer"`
}

func ensurePorts(path string) (*portSet, error) {
	var ports portSet
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &ports); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	for _, p := range []*int{&ports.APIServer, &ports.Backend, &ports.EtcdClient, &ports.EtcdPeer} {
		if *p != 0 {
			// The instance keeps its address, as a Service does: a port still taken is waited
			// for, and a start fails rather than move (clients, the soak's Sensors and
			// controller among them, keep the address they were given).
			if err := waitFree(*p, portWait); err != nil {
				return nil, err
			}
			continue
		}
		if *p, err = freePort(); err != nil {
			return nil, err
		}
	}
	data, err = json.Marshal(ports)
	if err != nil {
		return nil, err
	}
	return &ports, writeFileAtomic(path, data, 0o600)
}

// How long a restart waits for one of its ports to be free.
const portWait = 30 * time.Second

func waitFree(port int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for !portFree(port) {
		if time.Now().After(deadline) {
			return fmt.Errorf("port %d, this instance's since its first start, is still taken after %s: stop what listens on it (ss -ltnp 'sport = :%d'); the instance does not move, as its clients keep the address", port, wait, port)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// freePort picks a free port below the kernel's range for outgoing connections'
// ports (ip_local_port_range): a port picked by the kernel (bind to :0) comes from that range,
// and while the server is down any client's outgoing connection may take it as its own, so
// that a restart found it taken (a soak's API server came back on another port, and every
// client lost it).
func freePort() (int, error) {
	low := 32768
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if fields := strings.Fields(string(data)); len(fields) == 2 {
			if n, err := strconv.Atoi(fields[0]); err == nil {
				low = n
			}
		}
	}
	const first = 10000
	if low <= first+100 {
		return 0, fmt.Errorf("the kernel's range for outgoing ports starts at %d: no room below it for the control plane's ports", low)
	}
	for range 1000 {
		port := first + rand.IntN(low-first)
		if portFree(port) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port between %d and %d", first, low)
}
