// kubelet-bootstrap runs kubelet's own foreground TLS bootstrap code
// (k8s.io/kubernetes/pkg/kubelet/certificate/bootstrap.LoadClientCert) so that tests and
// benchmarks can put tlsboot beside the real kubelet: same inputs, compare results.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/kubernetes/pkg/kubelet/certificate/bootstrap"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig to write (kubelet --kubeconfig)")
	bootstrapKubeconfig := flag.String("bootstrap-kubeconfig", "", "bootstrap kubeconfig (kubelet --bootstrap-kubeconfig)")
	certDir := flag.String("cert-dir", "", "certificate directory (kubelet --cert-dir)")
	nodeName := flag.String("node-name", "", "node name")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	if *kubeconfig == "" || *bootstrapKubeconfig == "" || *certDir == "" || *nodeName == "" {
		fmt.Fprintln(os.Stderr, "kubelet-bootstrap: --kubeconfig, --bootstrap-kubeconfig, --cert-dir and --node-name are required")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := bootstrap.LoadClientCert(ctx, *kubeconfig, *bootstrapKubeconfig, *certDir, types.NodeName(*nodeName)); err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-bootstrap: %v\n", err)
		os.Exit(1)
	}
}
