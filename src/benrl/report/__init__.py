"""The report stage: results.json, report.md and a self-contained report.html."""
