package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const fieldManager = "stagectl-controlplane"

type adminClients struct {
	kube          kubernetes.Interface
	dynamic       dynamic.Interface
	apiextensions apiextensions.Interface
}

func adminRESTConfig(pki *pkiFiles, port int) *rest.Config {
	return &rest.Config{
		Host: fmt.Sprintf("https://127.0.0.1:%d", port),
		TLSClientConfig: rest.TLSClientConfig{
			CAFile: pki.CACert, CertFile: pki.AdminCert, KeyFile: pki.AdminKey,
		},
		QPS: -1, // no client-side throttling of our own few setup calls
	}
}

func newAdminClients(pki *pkiFiles, port int) (*adminClients, error) {
	cfg := adminRESTConfig(pki, port)
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ext, err := apiextensions.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &adminClients{kube: kube, dynamic: dyn, apiextensions: ext}, nil
}

// waitReady polls /readyz, which turns 200 only after every post-start hook (RBAC bootstrap
// roles among them) has finished, and gives up early if the API server exits.
func waitReady(ctx context.Context, c *adminClients, apiserverDone <-chan error) error {
	start := time.Now()
	for {
		select {
		case err := <-apiserverDone:
			return fmt.Errorf("API server exited before it was ready: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("API server not ready after %s", time.Since(start).Round(time.Second))
		case <-time.After(100 * time.Millisecond):
		}
		body, err := c.kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			log.Printf("API server ready after %s", time.Since(start).Round(time.Millisecond))
			return nil
		}
	}
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// applyCRDs server-side applies every CustomResourceDefinition found in the YAML files of dirs
// (or in the files named)
// (other documents, such as a kustomization.yaml, are passed over) and waits until all are
// Established. Server-side apply because Argo's full Workflow CRD is far larger than the
// last-applied annotation a client-side apply would store.
func applyCRDs(ctx context.Context, c *adminClients, dirs []string) error {
	var names []string
	appliedCount := 0
	for _, dir := range dirs {
		files := []string{dir}
		if info, err := os.Stat(dir); err != nil {
			return err
		} else if info.IsDir() {
			if files, err = filepath.Glob(filepath.Join(dir, "*.yaml")); err != nil {
				return err
			}
		}
		if len(files) == 0 {
			return fmt.Errorf("no YAML files in %s", dir)
		}
		sort.Strings(files)
		for _, file := range files {
			crds, err := readCRDs(file)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			for _, crd := range crds {
				applied, err := applyCRD(ctx, c, crd)
				if err != nil {
					return fmt.Errorf("apply %s: %w", crd.GetName(), err)
				}
				names = append(names, crd.GetName())
				appliedCount += applied
			}
		}
	}
	for _, name := range names {
		err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			crd, err := c.apiextensions.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			for _, cond := range crd.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("%s not established: %w", name, err)
		}
	}
	log.Printf("%d CRDs established (%d applied, the rest unchanged)", len(names), appliedCount)
	return waitStorageReady(ctx, c, names)
}

// waitStorageReady waits until each CRD's resources can be listed. Established is not enough:
// on a restart with many stored objects the API server's cache of a resource takes a while to
// fill, and until then a list or watch is answered 429 "storage is (re)initializing".
func waitStorageReady(ctx context.Context, c *adminClients, names []string) error {
	start := time.Now()
	for _, name := range names {
		crd, err := c.apiextensions.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		version := crd.Spec.Versions[0].Name
		for _, v := range crd.Spec.Versions {
			if v.Storage {
				version = v.Name
			}
		}
		resource := schema.GroupVersionResource{Group: crd.Spec.Group, Version: version, Resource: crd.Spec.Names.Plural}
		var last error
		err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			_, last = c.dynamic.Resource(resource).List(ctx, metav1.ListOptions{Limit: 1})
			return last == nil, nil
		})
		if err != nil {
			return fmt.Errorf("%s cannot be listed: %v (%w)", name, last, err)
		}
	}
	log.Printf("every CRD's storage ready after %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// sourceHashAnnotation records which manifest a CRD was applied from. Applying Argo's large CRDs
// again takes the API server seconds, so a restart on existing data skips the unchanged ones.
const sourceHashAnnotation = "controlplane.stagectl.dev/source-sha256"

func applyCRD(ctx context.Context, c *adminClients, crd *unstructured.Unstructured) (int, error) {
	source, err := json.Marshal(crd.Object)
	if err != nil {
		return 0, err
	}
	hash := fmt.Sprintf("%x", sha256.Sum256(source))
	existing, err := c.dynamic.Resource(crdResource).Get(ctx, crd.GetName(), metav1.GetOptions{})
	if err == nil && existing.GetAnnotations()[sourceHashAnnotation] == hash {
		return 0, nil
	}
	annotations := crd.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[sourceHashAnnotation] = hash
	crd.SetAnnotations(annotations)
	_, err = c.dynamic.Resource(crdResource).Apply(ctx, crd.GetName(), crd,
		metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
	if err != nil {
		return 0, err
	}
	return 1, nil
}

func readCRDs(file string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	decoder := utilyaml.NewYAMLOrJSONDecoder(f, 64<<10)
	var crds []*unstructured.Unstructured
	for {
		doc := &unstructured.Unstructured{}
		if err := decoder.Decode(&doc.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return crds, nil
			}
			return nil, err
		}
		if doc.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, doc)
		}
	}
}

// writeKubeconfig embeds the certificates so the file works from any directory and process.
func writeKubeconfig(path string, pki *pkiFiles, port int) error {
	read := func(p string) []byte {
		data, err := os.ReadFile(p)
		if err != nil {
			panic(err)
		}
		return data
	}
	const name = "stagectl-test"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{
		Server:                   fmt.Sprintf("https://127.0.0.1:%d", port),
		CertificateAuthorityData: read(pki.CACert),
	}
	cfg.AuthInfos[name+"-admin"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: read(pki.AdminCert),
		ClientKeyData:         read(pki.AdminKey),
	}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name + "-admin", Namespace: "default"}
	cfg.CurrentContext = name
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data, 0o600)
}
