"""Vault's ingest benchmark: `python -m bench` (or `make bench`); `--quick` for a smoke test of the bench.

What is measured, and why:

* Video. Vault converts each video in ONE ffmpeg run: one decode, a split into every HLS rung plus the
  thumbnail, preview and poster branches, AES-128 HLS written directly. That design is only worth it if
  it costs about what the plain ladder costs, so the full `vaultserver process --once` run (start-up,
  hashing, probe, transcode, sealing, commit) is compared against two baselines measured in the same run:
  (a) one plain ffmpeg command producing the same ladder unencrypted with no extra outputs (target: Vault
  within 10% of it in wall and CPU time), and (b) one ffmpeg run per rung, each decoding the source again,
  the naive design (target: Vault faster). Two more rows show where Vault's time goes: its start-up on an
  empty import folder, and its probe + transcode() + preview encoding alone (no database or sealing).
* Photos. Images per second of `process --once` on 12 MP JPEGs (with start-up, as a user sees it), and
  the pure `convert_image` time per photo in-process. A 12000x2000 panorama alone, in its own process:
  peak memory (target < 500 MB), since a large photo must not exhaust a small home server.

Every measurement runs in its own runner process (bench/runner.py), so wall time, CPU time (user + sys of
the whole process tree) and peak RSS belong to that measurement alone. Inputs are generated once into
bench/.work/ (bench/inputs.py); results go to bench/results/latest.json. On a busy machine the numbers are
noisy: compare ratios from one run, not absolute times across runs.

`python -m bench serve` is the serving benchmark (bench/serving.py; `all` runs both): Vault's whole HTTPS
stack against nginx serving the same bytes, with 16 clients on 127.0.0.1. Its parts: serve_setup.py (the
data dir: an ingested clip and photo, 100,000 library rows), serve_process.py (`vaultserver serve` in its
own process; RSS and CPU), nginx_baseline.py, loadgen.py (wrk, or pyload.py's Python client); results go
to bench/results/serve.json.
"""
