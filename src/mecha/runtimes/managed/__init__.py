"""Managed workers: Docker containers Mecha starts, probes, pools and builds images for."""
