package main

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// latencyProxy serves the address clients know the API server by: it passes every connection
// through to the server's own port, holding each chunk a client sends for the latency named
// in the latency file (a Go duration such as "400ms"; absent or empty, none). A test makes the
// server slow for everyone — the controller, the pods, stagectl — by writing that file, as a
// loaded or distant API server is, without touching the server itself.
type latencyProxy struct {
	file    string
	latency atomic.Int64
}

// startLatencyProxy opens the clients' port once the backend accepts connections: until then a
// client is refused, as by a server that is not up yet.
func startLatencyProxy(ctx context.Context, listen, backend, file string) {
	proxy := &latencyProxy{file: file}
	go func() {
		for {
			probe, err := net.DialTimeout("tcp", backend, time.Second)
			if err == nil {
				_ = probe.Close()
				break
			}
			if ctx.Err() != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		listener, err := net.Listen("tcp", listen)
		if err != nil {
			log.Fatalf("latency proxy: %v", err)
		}
		for {
			client, err := listener.Accept()
			if err != nil {
				log.Printf("latency proxy: %v", err)
				return
			}
			go proxy.pass(client, backend)
		}
	}()
}

// current reads the latency file; read for every chunk, so that a test that writes it knows
// the next request meets it (a read of a small file costs microseconds).
func (p *latencyProxy) current() time.Duration {
	data, err := os.ReadFile(p.file)
	var latency time.Duration
	switch {
	case err == nil && strings.TrimSpace(string(data)) != "":
		if latency, err = time.ParseDuration(strings.TrimSpace(string(data))); err != nil {
			log.Printf("latency proxy: %s: %v; no latency", p.file, err)
			latency = 0
		}
	case err != nil && !errors.Is(err, os.ErrNotExist):
		log.Printf("latency proxy: %v", err)
	}
	if previous := time.Duration(p.latency.Swap(int64(latency))); previous != latency {
		log.Printf("latency proxy: latency %v", latency)
	}
	return latency
}

func (p *latencyProxy) pass(client net.Conn, backend string) {
	defer client.Close()
	server, err := net.Dial("tcp", backend)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{}, 2)
	go func() {
		buffer := make([]byte, 64*1024)
		for {
			n, err := client.Read(buffer)
			if n > 0 {
				if latency := p.current(); latency > 0 {
					time.Sleep(latency)
				}
				if _, werr := server.Write(buffer[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		if tcp, ok := server.(*net.TCPConn); ok {
			_ = tcp.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(client, server)
		if tcp, ok := client.(*net.TCPConn); ok {
			_ = tcp.CloseWrite()
		}
		done <- struct{}{}
	}()
	<-done
	<-done
}
