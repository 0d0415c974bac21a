"""One-off research scripts; what each found is in README.md here and docs/results.md."""
