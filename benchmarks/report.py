"""The run's figures as a Markdown section of docs/benchmarks.md, and a plot of the history rows."""

from __future__ import annotations

import os
import platform
import re
from importlib import metadata
from pathlib import Path

from benchmarks.suite import Results

START = "<!-- benchmarks all: start (written by `python -m benchmarks all`; edits here are replaced) -->"
END = "<!-- benchmarks all: end -->"
PACKAGES = ("duckdb", "eventsourcing", "kafka-python", "fastavro", "pyarrow", "quixstreams", "confluent-kafka")


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        cpu = found.group(1).strip() if found else cpu
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return (f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; {', '.join(versions)}")


def _rate(value: float) -> str:
    return f"{value:,.0f} ev/s"


def markdown(results: Results, plot: str | None) -> str:
    rows = results.rows
    lines = [START, "", f"### Latest run: {results.started}", "",
             f"`python -m benchmarks all` on {machine()}. {results.events:,} events per row "
             "(history rows as given); a Tansu broker started by the run; PostgreSQL on this machine.", "",
             "| path | ledger | yardstick | ratio | target | met |", "|---|---:|---:|---:|---|---|"]

    def line(path: str, ledger: str, yardstick: str, ratio: str, target: str, met: bool) -> None:
        lines.append(f"| {path} | {ledger} | {yardstick} | {ratio} | {target} | {'yes' if met else '**no**'} |")

    if "ingest" in rows:
        r = rows["ingest"]
        line("embedded ingest (JSONL into SQLite, every read model current)", _rate(r["ledger"]),
             f"eventsourcing batched save {_rate(r['eventsourcing'])}", f"{r['ratio']:.2f}×",
             "≥ 30k ev/s and ≥ 0.9×", r["ledger"] >= 30_000 and r["ratio"] >= 0.9)
        line("record only (`ingest --no-project`)", _rate(r["record_only"]), "", "", "(part of the above)", True)
    if "intake_postgres" in rows:
        r = rows["intake_postgres"]
        line("Kafka intake → store (PostgreSQL)", _rate(r["ledger"]), "", "", "≥ 20k ev/s", r["ledger"] >= 20_000)
    if "relay" in rows:
        r = rows["relay"]
        line("relay store → Kafka", _rate(r["ledger"]), f"raw kafka-python produce {_rate(r['raw_produce'])}",
             f"{r['ratio']:.2f}×", "≥ 0.9×", r["ratio"] >= 0.9)
    if "kafka_projection" in rows:
        r = rows["kafka_projection"]
        line("projection from Kafka, every read model", _rate(r["ledger"]),
             f"raw kafka-python consume {_rate(r['raw_consume'])}", f"{r['ratio']:.2f}×", "≥ 0.7×", r["ratio"] >= 0.7)
        if "quix_margin" in r:
            line("… against Quix Streams (count and sum per customer, RocksDB state)", _rate(r["ledger"]),
                 f"Quix at the margin {_rate(r['quix_margin'])} (whole process {r['quix_whole_s']:.1f} s)",
                 f"{r['vs_quix']:.2f}×", "≥ 2.5×", r["vs_quix"] >= 2.5)
    for point in results.history:
        if point["events"] == 1_000_000:
            line("replay of 1,000,000 events into fresh read models", f"{point['replay_s']:.1f} s",
                 "", "", "≤ 20 s", point["replay_s"] <= 20)
    if len(results.history) > 1:
        peaks = [p["replay_peak_mib"] for p in results.history]
        growth = max(peaks) / min(peaks) - 1
        line(f"replay peak memory, {results.history[0]['events']:,} to {results.history[-1]['events']:,} events",
             f"{min(peaks):,.0f}–{max(peaks):,.0f} MiB", "", f"+{growth:.0%}", "flat within 10 %", growth <= 0.10)
    for name, target in (("timeline", 50), ("segment_sizes", 200)):
        if f"query_{name}" in rows:
            r = rows[f"query_{name}"]
            what = "a customer's timeline" if name == "timeline" else "segment sizes"
            line(f"`ledger query` {what} on {r['events']:,} events", f"{r['median_ms']:.1f} ms",
                 f"whole command {r['command_ms']:.0f} ms on {r['command_events']:,}", "", f"≤ {target} ms",
                 r["median_ms"] <= target)
    if results.history:
        lines += ["", "| history | record | record peak | replay | replay rate | replay peak | timeline "
                      "| segment sizes |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for p in results.history:
            lines.append(f"| {p['events']:,} | {_rate(p['record'])} | {p['record_peak_mib']:,.0f} MiB | "
                         f"{p['replay_s']:.1f} s | {_rate(p['replay'])} | {p['replay_peak_mib']:,.0f} MiB | "
                         f"{p['timeline_ms']:.1f} ms | {p['segment_sizes_ms']:.1f} ms |")
    if plot:
        lines += ["", f"![throughput and peak memory against history length]({plot})"]
    lines += ["", END]
    return "\n".join(lines)


def write(results: Results, doc: Path) -> None:
    """Replace the generated section of `doc` (or add it at the end), and draw the plot beside it."""
    plot = draw(results, doc.with_name("benchmarks-history.png")) if len(results.history) > 1 else None
    section = markdown(results, plot)
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## One command, every row (issue 12)\n\n" + section + "\n"
    doc.write_text(text, encoding="utf-8")
    print(f"wrote {doc}" + (f" and {doc.with_name(plot)}" if plot else ""))


def draw(results: Results, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")  # no screen here
    import matplotlib.pyplot as plt

    events = [p["events"] for p in results.history]
    figure, (rates, memory) = plt.subplots(1, 2, figsize=(10, 4))
    rates.plot(events, [p["replay"] for p in results.history], marker="o", label="replay")
    rates.plot(events, [p["record"] for p in results.history], marker="o", label="record (ingest --no-project)")
    rates.set(xscale="log", xlabel="events in the history", ylabel="events/s", title="Throughput")
    rates.set_ylim(bottom=0)
    rates.legend()
    memory.plot(events, [p["replay_peak_mib"] for p in results.history], marker="o", label="replay")
    memory.plot(events, [p["record_peak_mib"] for p in results.history], marker="o", label="record")
    memory.set(xscale="log", xlabel="events in the history", ylabel="MiB", title="Peak resident memory")
    memory.set_ylim(bottom=0)
    memory.legend()
    figure.suptitle(f"ledger, {results.started}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path.name
