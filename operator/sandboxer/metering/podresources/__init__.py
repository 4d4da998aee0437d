"""kubelet PodResources API: which pod holds which device (our types, client, fake kubelet)."""
