// podrunner stands in for the kubelet and Argo's executor in the end-to-end tests, because the
// test control plane has no nodes. Test infrastructure only, never part of stagectl.
//
// It watches the pods Argo's workflow-controller creates and, for each, runs the main
// container's real command as a local process: the image must be one it was told about (an
// image is a directory of executables put first on PATH; an absolute command path is looked up
// there by its base name), with that container's arguments and environment, in a private
// working directory where each volume mount is a subdirectory (paths under a mount path are
// rewritten into it; a Secret volume holds the Secret's keys as files). The process authenticates as the pod's ServiceAccount: a real token from
// the TokenRequest API in a kubeconfig of its own. When it ends, podrunner does what Argo's
// executor does for the controller: it writes the WorkflowTaskResult (output parameters read
// from the files the template in ARGO_TEMPLATE names, or their defaults, and the
// report-outputs-completed label), then sets the pod's status (phase, the main and wait
// containers terminated with the exit code). A pod of an image it does not know fails with a
// message that says so. Not simulated: security contexts (the process runs as podrunner's user),
// resource limits, $(VAR) expansion, env sources other than the pod's own fields.
//
//	podrunner -kubeconfig FILE -work DIR -image NAME=FILE[,FILE...] ... [-pass-env PREFIX]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	wfv1 "github.com/argoproj/argo-workflows/v4/pkg/apis/workflow/v1alpha1"
	wfclientset "github.com/argoproj/argo-workflows/v4/pkg/client/clientset/versioned"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	labelWorkflow         = "workflows.argoproj.io/workflow"
	labelOutputsCompleted = "workflows.argoproj.io/report-outputs-completed"
	mainContainer         = "main"
)

type imageFlags map[string][]string

func (f imageFlags) String() string { return fmt.Sprint(map[string][]string(f)) }
func (f imageFlags) Set(value string) error {
	name, files, ok := strings.Cut(value, "=")
	if !ok || name == "" || files == "" {
		return fmt.Errorf("want NAME=FILE[,FILE...], got %q", value)
	}
	f[name] = append(f[name], strings.Split(files, ",")...)
	return nil
}

type runner struct {
	kube      kubernetes.Interface
	argo      wfclientset.Interface
	config    *rest.Config
	work      string
	images    map[string]string // image name → its directory of executables
	passEnv   string
	mu        sync.Mutex
	started   map[types.UID]context.CancelFunc
	processes sync.WaitGroup
}

func main() {
	images := imageFlags{}
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "the control plane's admin kubeconfig")
	work := flag.String("work", "", "the directory for pods' working directories and logs")
	passEnv := flag.String("pass-env", "E2E_", "podrunner's environment variables with this prefix reach every process")
	flag.Var(images, "image", "NAME=FILE[,FILE...]: an image and the executables it holds (repeatable)")
	flag.Parse()
	if *work == "" || len(images) == 0 {
		log.Fatal("give -work and at least one -image")
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatal(err)
	}
	config.UserAgent = "podrunner"
	// The kubelet's own client limits (kubeAPIQPS, kubeAPIBurst): with client-go's defaults
	// (5, 10) a few dozen pods at once queued their requests for many seconds, and every step
	// of every play waited on the runner.
	config.QPS, config.Burst = 50, 100
	r := &runner{
		kube: kubernetes.NewForConfigOrDie(config), argo: wfclientset.NewForConfigOrDie(config), config: config,
		work: *work, images: map[string]string{}, passEnv: *passEnv, started: map[types.UID]context.CancelFunc{},
	}
	for name, files := range images {
		dir, err := r.installImage(name, files)
		if err != nil {
			log.Fatal(err)
		}
		r.images[name] = dir
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	factory := informers.NewSharedInformerFactoryWithOptions(r.kube, 0,
		informers.WithTweakListOptions(func(options *metav1.ListOptions) { options.LabelSelector = labelWorkflow }))
	pods := factory.Core().V1().Pods().Informer()
	_, err = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.consider(ctx, obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { r.consider(ctx, obj.(*corev1.Pod)) },
		DeleteFunc: func(obj any) {
			if pod, ok := obj.(*corev1.Pod); ok {
				r.cancel(pod.UID)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	factory.Start(ctx.Done())
	log.Printf("podrunner: running pods of images %s", strings.Join(r.imageNames(), ", "))
	<-ctx.Done()
	factory.Shutdown()
	r.processes.Wait()
}

func (r *runner) imageNames() []string {
	names := make([]string, 0, len(r.images))
	for name := range r.images {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// installImage makes the image's directory of executables: links to the given files.
func (r *runner) installImage(name string, files []string) (string, error) {
	dir := filepath.Join(r.work, "images", strings.NewReplacer("/", "_", ":", "_").Replace(name))
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, file := range files {
		target, err := filepath.Abs(file)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(target); err != nil {
			return "", fmt.Errorf("image %s: %w", name, err)
		}
		if err := os.Symlink(target, filepath.Join(dir, filepath.Base(file))); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func (r *runner) consider(ctx context.Context, pod *corev1.Pod) {
	if pod.DeletionTimestamp != nil || (pod.Status.Phase != "" && pod.Status.Phase != corev1.PodPending) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, seen := r.started[pod.UID]; seen {
		return
	}
	podCtx, cancel := context.WithCancel(ctx)
	r.started[pod.UID] = cancel
	r.processes.Add(1)
	go func() {
		defer r.processes.Done()
		if err := r.run(podCtx, pod.DeepCopy()); err != nil {
			log.Printf("%s/%s: %v", pod.Namespace, pod.Name, err)
		}
	}()
}

func (r *runner) cancel(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cancel, ok := r.started[uid]; ok {
		cancel()
	}
}

// run takes one pod from Pending to Succeeded or Failed.
func (r *runner) run(ctx context.Context, pod *corev1.Pod) error {
	main, template, err := mainAndTemplate(pod)
	if err != nil {
		return r.refuse(ctx, pod, err.Error())
	}
	imageDir, known := r.images[main.Image]
	if !known {
		return r.refuse(ctx, pod, fmt.Sprintf("podrunner: image %s is not one it can run (known: %s)", main.Image, strings.Join(r.imageNames(), ", ")))
	}
	dir := filepath.Join(r.work, "pods", pod.Namespace, pod.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mounts := newMounts(dir, main.VolumeMounts)
	if err := mounts.create(); err != nil {
		return err
	}
	if err := r.fillSecretVolumes(ctx, pod, dir); err != nil {
		return r.refuse(ctx, pod, err.Error())
	}
	command, err := commandLine(main, imageDir, mounts)
	if err != nil {
		return r.refuse(ctx, pod, err.Error())
	}
	env, err := r.environment(ctx, pod, main, imageDir, dir, mounts)
	if err != nil {
		return r.refuse(ctx, pod, err.Error())
	}

	started := metav1.Now()
	if err := r.setStatus(ctx, pod, func(status *corev1.PodStatus) {
		status.Phase = corev1.PodRunning
		status.StartTime = &started
		status.InitContainerStatuses = []corev1.ContainerStatus{terminated("init", 0, started, started)}
		status.ContainerStatuses = []corev1.ContainerStatus{running("wait", started), running(mainContainer, started)}
	}); err != nil {
		return err
	}

	logFile, err := os.Create(filepath.Join(dir, "main.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	process := exec.Command(command[0], command[1:]...)
	process.Dir, process.Env, process.Stdout, process.Stderr = dir, env, logFile, logFile
	// Its own process group, so that a deleted pod takes its children with it; children a
	// process leaves behind on a normal exit (an agent's late event) live on.
	process.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	exitCode := int32(0)
	if err := process.Start(); err != nil {
		return r.refuse(ctx, pod, fmt.Sprintf("podrunner: start %s: %v", command[0], err))
	}
	done := make(chan error, 1)
	go func() { done <- process.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-process.Process.Pid, syscall.SIGKILL)
		<-done
		return nil
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		exitCode = int32(exit.ExitCode())
		if exitCode < 0 {
			exitCode = 137
		}
	} else if err != nil {
		return err
	}
	log.Printf("%s/%s: %s exited %d", pod.Namespace, pod.Name, filepath.Base(command[0]), exitCode)

	outputs, err := readOutputs(template, mounts)
	if err != nil {
		fmt.Fprintf(logFile, "podrunner: %v\n", err)
		exitCode = max(exitCode, 1)
	}
	if err := r.reportOutputs(ctx, pod, outputs); err != nil {
		return err
	}
	finished := metav1.Now()
	return r.setStatus(ctx, pod, func(status *corev1.PodStatus) {
		status.Phase = corev1.PodSucceeded
		if exitCode != 0 {
			status.Phase = corev1.PodFailed
		}
		status.ContainerStatuses = []corev1.ContainerStatus{terminated("wait", 0, started, finished), terminated(mainContainer, exitCode, started, finished)}
	})
}

// mainAndTemplate finds the main container and the template the controller put in ARGO_TEMPLATE.
func mainAndTemplate(pod *corev1.Pod) (*corev1.Container, *wfv1.Template, error) {
	var main *corev1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == mainContainer {
			main = &pod.Spec.Containers[i]
		}
	}
	if main == nil {
		return nil, nil, errors.New("podrunner: the pod has no main container (container sets and scripts are not supported)")
	}
	for _, container := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		for _, env := range container.Env {
			if env.Name == "ARGO_TEMPLATE" {
				template := &wfv1.Template{}
				if err := json.Unmarshal([]byte(env.Value), template); err != nil {
					return nil, nil, fmt.Errorf("podrunner: ARGO_TEMPLATE: %v", err)
				}
				return main, template, nil
			}
		}
	}
	return nil, nil, errors.New("podrunner: no ARGO_TEMPLATE in the pod (offloaded templates are not supported)")
}

// mounts maps a container's volume mounts onto subdirectories of the pod's directory.
type mounts []struct{ container, local string }

func newMounts(dir string, volumeMounts []corev1.VolumeMount) mounts {
	var m mounts
	for _, mount := range volumeMounts {
		m = append(m, struct{ container, local string }{
			filepath.Clean(mount.MountPath), filepath.Join(dir, "volumes", mount.Name, mount.SubPath),
		})
	}
	// The longest mount path first, so that a nested mount wins.
	sort.Slice(m, func(i, j int) bool { return len(m[i].container) > len(m[j].container) })
	return m
}

func (m mounts) create() error {
	for _, mount := range m {
		if err := os.MkdirAll(mount.local, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// local rewrites every path under a mount path in s to where that mount is here.
func (m mounts) local(s string) string {
	for _, mount := range m {
		if s == mount.container {
			return mount.local
		}
		s = strings.ReplaceAll(s, mount.container+"/", mount.local+"/")
	}
	return s
}

// fillSecretVolumes writes each Secret volume's keys as files, as the kubelet does (mode 0400).
// A Secret that does not exist fails the pod with a message; the kubelet would instead hold it
// in ContainerCreating until the Secret appears.
func (r *runner) fillSecretVolumes(ctx context.Context, pod *corev1.Pod, dir string) error {
	for _, volume := range pod.Spec.Volumes {
		source := volume.Secret
		if source == nil {
			continue
		}
		var secret *corev1.Secret
		err := retrying(ctx, func() (err error) {
			secret, err = r.kube.CoreV1().Secrets(pod.Namespace).Get(ctx, source.SecretName, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("podrunner: volume %s: %v", volume.Name, err)
		}
		if secret == nil || secret.Name == "" {
			if source.Optional != nil && *source.Optional {
				continue
			}
			return fmt.Errorf("podrunner: volume %s: secret %q not found", volume.Name, source.SecretName)
		}
		paths := map[string]string{}
		for key := range secret.Data {
			paths[key] = key
		}
		if len(source.Items) > 0 {
			paths = map[string]string{}
			for _, item := range source.Items {
				paths[item.Key] = item.Path
			}
		}
		for key, path := range paths {
			data, ok := secret.Data[key]
			if !ok {
				return fmt.Errorf("podrunner: volume %s: secret %q has no key %q", volume.Name, source.SecretName, key)
			}
			file := filepath.Join(dir, "volumes", volume.Name, path)
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(file, data, 0o400); err != nil {
				return err
			}
		}
	}
	return nil
}

// commandLine is the main container's command as the emissary would run it, with the image's
// executables and the mounts mapped.
func commandLine(main *corev1.Container, imageDir string, m mounts) ([]string, error) {
	command := main.Command
	// The controller wraps the command in `argoexec emissary [flags] -- COMMAND`.
	if len(command) > 0 && filepath.Base(command[0]) == "argoexec" {
		for i, part := range command {
			if part == "--" {
				command = command[i+1:]
				break
			}
		}
	}
	line := append(append([]string{}, command...), main.Args...)
	if len(line) == 0 {
		return nil, fmt.Errorf("podrunner: the main container of image %s has no command", main.Image)
	}
	for i := range line {
		line[i] = m.local(line[i])
	}
	executable := line[0]
	if inImage := filepath.Join(imageDir, filepath.Base(executable)); fileExists(inImage) {
		line[0] = inImage
	} else if filepath.IsAbs(executable) {
		return nil, fmt.Errorf("podrunner: image %s has no %s", main.Image, executable)
	}
	return line, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// environment is the main container's environment, plus PATH (the image first), HOME, what a
// container gets from the kubelet, and a KUBECONFIG that authenticates as the pod's
// ServiceAccount.
func (r *runner) environment(ctx context.Context, pod *corev1.Pod, main *corev1.Container, imageDir, dir string, m mounts) ([]string, error) {
	kubeconfig, err := r.serviceAccountKubeconfig(ctx, pod, dir)
	if err != nil {
		return nil, err
	}
	server, err := url.Parse(r.config.Host)
	if err != nil {
		return nil, err
	}
	// What the kubelet and the container runtime give every container, the API server's address
	// as the kubernetes Service's stands in; and the pod's credentials as a kubeconfig.
	env := []string{
		"PATH=" + imageDir + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + dir,
		"HOSTNAME=" + pod.Name,
		"KUBERNETES_SERVICE_HOST=" + server.Hostname(),
		"KUBERNETES_SERVICE_PORT=" + server.Port(),
		"KUBECONFIG=" + kubeconfig,
	}
	for _, variable := range os.Environ() {
		if r.passEnv != "" && strings.HasPrefix(variable, r.passEnv) {
			env = append(env, variable)
		}
	}
	for _, variable := range main.Env {
		value := variable.Value
		if source := variable.ValueFrom; source != nil {
			if source.FieldRef == nil {
				return nil, fmt.Errorf("podrunner: env %s: only fieldRef sources are supported", variable.Name)
			}
			switch source.FieldRef.FieldPath {
			case "metadata.name":
				value = pod.Name
			case "metadata.namespace":
				value = pod.Namespace
			case "metadata.uid":
				value = string(pod.UID)
			case "spec.serviceAccountName":
				value = pod.Spec.ServiceAccountName
			default:
				return nil, fmt.Errorf("podrunner: env %s: field %s is not supported", variable.Name, source.FieldRef.FieldPath)
			}
		}
		env = append(env, variable.Name+"="+m.local(value))
	}
	return env, nil
}

func (r *runner) serviceAccountKubeconfig(ctx context.Context, pod *corev1.Pod, dir string) (string, error) {
	account := pod.Spec.ServiceAccountName
	if account == "" {
		account = "default"
	}
	expiry := int64(3600)
	var token *authv1.TokenRequest
	err := retrying(ctx, func() (err error) {
		token, err = r.kube.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, account,
			&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
				ExpirationSeconds: &expiry,
				// Bound to the pod, as the kubelet's projected tokens are: the API server then
				// names the pod in every request's user info (and its audit log), which is how
				// the soak's checker tells which step wrote what.
				BoundObjectRef: &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
			}}, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("token of ServiceAccount %s: %w", account, err)
	}
	ca := r.config.CAData
	if len(ca) == 0 && r.config.CAFile != "" {
		if ca, err = os.ReadFile(r.config.CAFile); err != nil {
			return "", err
		}
	}
	config := clientcmdapi.NewConfig()
	config.Clusters["cluster"] = &clientcmdapi.Cluster{Server: r.config.Host, CertificateAuthorityData: ca}
	config.AuthInfos[account] = &clientcmdapi.AuthInfo{Token: token.Status.Token}
	config.Contexts["pod"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: account, Namespace: pod.Namespace}
	config.CurrentContext = "pod"
	path := filepath.Join(dir, "kubeconfig")
	return path, clientcmd.WriteToFile(*config, path)
}

// readOutputs reads the template's output parameters as the executor does: from the file
// valueFrom.path names, else the default; a missing file without a default is an error.
func readOutputs(template *wfv1.Template, m mounts) (*wfv1.Outputs, error) {
	outputs := &wfv1.Outputs{}
	for _, parameter := range template.Outputs.Parameters {
		from := parameter.ValueFrom
		if from == nil || from.Path == "" {
			return nil, fmt.Errorf("output parameter %s: only valueFrom.path is supported", parameter.Name)
		}
		data, err := os.ReadFile(m.local(from.Path))
		var value wfv1.AnyString
		switch {
		case err == nil:
			value = wfv1.AnyString(strings.TrimSpace(string(data)))
		case from.Default != nil:
			value = *from.Default
		default:
			return nil, fmt.Errorf("output parameter %s: %v", parameter.Name, err)
		}
		parameter.Value = &value
		parameter.ValueFrom = nil
		outputs.Parameters = append(outputs.Parameters, parameter)
	}
	return outputs, nil
}

// reportOutputs writes the WorkflowTaskResult of the pod's node, complete, owned by the
// workflow as the executor's is.
func (r *runner) reportOutputs(ctx context.Context, pod *corev1.Pod, outputs *wfv1.Outputs) error {
	var owners []metav1.OwnerReference
	for _, owner := range pod.OwnerReferences {
		if owner.Kind == "Workflow" {
			owners = append(owners, metav1.OwnerReference{APIVersion: owner.APIVersion, Kind: owner.Kind, Name: owner.Name, UID: owner.UID})
		}
	}
	result := &wfv1.WorkflowTaskResult{
		ObjectMeta: metav1.ObjectMeta{
			Name:            pod.Annotations["workflows.argoproj.io/node-id"],
			Namespace:       pod.Namespace,
			Labels:          map[string]string{labelWorkflow: pod.Labels[labelWorkflow], labelOutputsCompleted: "true"},
			OwnerReferences: owners,
		},
		NodeResult: wfv1.NodeResult{Outputs: outputs},
	}
	if result.Name == "" || len(owners) != 1 {
		return errors.New("the pod has no node-id annotation or no owning Workflow")
	}
	results := r.argo.ArgoprojV1alpha1().WorkflowTaskResults(pod.Namespace)
	return retrying(ctx, func() error {
		_, err := results.Create(ctx, result, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// A retried node reuses its id: the newest pod's outputs win, as the executor's patch does.
			existing, getErr := results.Get(ctx, result.Name, metav1.GetOptions{})
			if getErr != nil {
				return getErr
			}
			existing.Labels, existing.NodeResult = result.Labels, result.NodeResult
			_, err = results.Update(ctx, existing, metav1.UpdateOptions{})
		}
		return err
	})
}

// setStatus changes the pod's status, on the newest pod, until it is written or the pod is gone.
func (r *runner) setStatus(ctx context.Context, pod *corev1.Pod, change func(*corev1.PodStatus)) error {
	pods := r.kube.CoreV1().Pods(pod.Namespace)
	return retrying(ctx, func() error {
		current, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		change(&current.Status)
		_, err = pods.UpdateStatus(ctx, current, metav1.UpdateOptions{})
		return err
	})
}

// refuse fails a pod podrunner cannot run, with the reason as the pod's message.
func (r *runner) refuse(ctx context.Context, pod *corev1.Pod, message string) error {
	log.Printf("%s/%s: %s", pod.Namespace, pod.Name, message)
	now := metav1.Now()
	return r.setStatus(ctx, pod, func(status *corev1.PodStatus) {
		status.Phase = corev1.PodFailed
		status.Message = message
		status.ContainerStatuses = []corev1.ContainerStatus{terminated(mainContainer, 1, now, now)}
	})
}

// retrying tries a call until it succeeds, for as long as the API server may take to come back
// (the end-to-end tests and the soak restart it), or the pod's context ends: a kubelet never
// gives up on a pod it has. (wait.Backoff with a Cap stops once the cap is reached, after
// about 5 s, and left pods Pending for good behind an API server down longer than that.)
func retrying(ctx context.Context, call func() error) error {
	delay := 100 * time.Millisecond
	for {
		err := call()
		if err == nil || apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

func running(name string, since metav1.Time) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: since}}}
}

func terminated(name string, exitCode int32, started, finished metav1.Time) corev1.ContainerStatus {
	reason := "Completed"
	if exitCode != 0 {
		reason = "Error"
	}
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: exitCode, Reason: reason, StartedAt: started, FinishedAt: finished,
	}}}
}
