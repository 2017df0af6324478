package main

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/kubernetes/pkg/controller/namespace"
)

// startNamespaceController runs kube-controller-manager's own namespace controller in this
// process, so that a deleted namespace goes away with everything in it, as on a real cluster:
// tests delete the namespaces they made, and the server keeps no leftovers from run to run.
func startNamespaceController(ctx context.Context, cfg *rest.Config) error {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(kube, 0)
	controller := namespace.NewNamespaceController(
		ctx, kube, meta,
		kube.Discovery().ServerPreferredNamespacedResources,
		factory.Core().V1().Namespaces(),
		5*time.Minute,
		v1.FinalizerKubernetes,
	)
	factory.Start(ctx.Done())
	go controller.Run(ctx, 2)
	return nil
}
