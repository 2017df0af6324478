package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
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
		if *p != 0 && portFree(*p) {
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

func portFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
