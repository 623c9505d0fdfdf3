"""Benchmark at scale: collect a results tree into tables, plots and a comparison with the paper."""

from feat2gs.sweep.collect import DISPLAY_NAMES, JobRecord, collect_jobs, display_name
from feat2gs.sweep.report import ReportResult, report

__all__ = ["DISPLAY_NAMES", "JobRecord", "ReportResult", "collect_jobs", "display_name", "report"]
