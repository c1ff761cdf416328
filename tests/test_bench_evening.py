"""The family-evening bench's arithmetic: percentiles, the kept-up rule, the player's stalls, playlists.

The bench itself runs for minutes (`python -m bench evening`); these are the rules its verdicts rest on.
"""

from __future__ import annotations

from bench.evening import kept_up, percentile, ratio, summarise
from bench.evening_load import Playhead, Samples, media_playlist, top_variant


def test_percentile_is_the_nearest_rank_value():
    values = [float(v) for v in range(100, 0, -1)]  # 1..100, unsorted
    assert percentile(values, 99) == 99.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 50) == 50.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0], 99) == 3.0  # fewer than 100 samples: p99 is the largest
    assert percentile([], 99) is None


def test_a_page_keeps_up_only_when_it_is_whole_and_within_its_second():
    assert kept_up(0.999, 0)
    assert kept_up(1.0, 0)
    assert not kept_up(1.001, 0)
    assert not kept_up(0.2, 1)  # fast, but a thumbnail is missing


def test_a_ratio_to_an_unmeasured_idle_figure_is_no_ratio():
    assert ratio(300.0, 200.0) == 1.5
    assert ratio(300.0, None) is None
    assert ratio(None, 200.0) is None


def test_a_player_that_keeps_its_buffer_never_stalls():
    player = Playhead()
    assert player.add(10.0, now=100.0) is None  # playback starts with the first segment
    assert player.ahead(104.0) == 6.0
    assert player.add(10.0, now=105.0) is None
    assert player.ahead(105.0) == 15.0


def test_a_segment_arriving_after_the_buffer_ran_dry_is_a_stall_and_playback_resumes_from_there():
    player = Playhead()
    player.add(10.0, now=100.0)
    assert player.ahead(113.0) == -3.0  # waiting since 110
    assert player.add(10.0, now=113.0) == (110.0, 3.0)
    assert player.ahead(113.0) == 10.0  # the stalled time is not played
    assert player.add(10.0, now=122.0) is None
    assert player.add(10.0, now=135.0) == (133.0, 2.0)


def test_a_phase_counts_only_the_samples_that_began_inside_it():
    samples = Samples(segments=[(9.0, 5.0), (10.0, 0.02), (11.0, 0.04), (20.0, 9.0)],
                      pages=[(10.5, 0.4, 0), (12.0, 1.5, 0), (13.0, 0.3, 2)],
                      stalls=[(15.0, 2.0)], errors=[(13.0, "thumbnail: HTTP 500"), (21.0, "late")])
    phase = summarise(samples, 10.0, 20.0)
    assert phase["segments"] == 2
    assert phase["segment_ttfb_p99_ms"] == 40.0
    assert (phase["pages"], phase["pages_kept_up"]) == (3, 1)
    assert (phase["stalls"], phase["stalled_seconds"]) == (1, 2.0)
    assert (phase["errors"], phase["error_kinds"]) == (1, ["thumbnail: HTTP 500"])


def test_the_player_picks_the_top_rendition_and_resolves_vault_relative_urls():
    master = ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n../hls/abc/360p/index.m3u8\n"
              "#EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080\n../hls/abc/1080p/index.m3u8\n"
              "#EXT-X-STREAM-INF:BANDWIDTH=2800000,RESOLUTION=1280x720\n../hls/abc/720p/index.m3u8\n")
    variant = top_variant(master, "/api/media/stream/abc")
    assert variant == "/api/media/hls/abc/1080p/index.m3u8"
    playlist = ('#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="../../../keys/k1",IV=0x01\n'
                "#EXTINF:10.000000,\nseg_00000.ts\n#EXTINF:4.5,\nseg_00001.ts\n#EXT-X-ENDLIST\n")
    key, segments = media_playlist(playlist, variant)
    assert key == "/api/media/keys/k1"
    assert segments == [("/api/media/hls/abc/1080p/seg_00000.ts", 10.0),
                        ("/api/media/hls/abc/1080p/seg_00001.ts", 4.5)]
