"""The project demo: runs each paper's demo on embedded data and writes `REPORT.md`."""
