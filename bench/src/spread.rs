//! How a run is divided and put back together: clients over the servers' URLs (the nodes of a cluster) and over the
//! bench's worker processes, and the workers' partial results merged into one report. Everything here is pure.

use std::ops::Range;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};

/// The servers' base URLs as given (`--url` repeated, or comma-separated): trimmed, without a trailing `/`, empty
/// entries dropped. At least one is needed.
pub fn urls(given: &[String]) -> anyhow::Result<Vec<String>> {
    let urls: Vec<String> = given
        .iter()
        .flat_map(|url| url.split(','))
        .map(|url| url.trim().trim_end_matches('/').to_owned())
        .filter(|url| !url.is_empty())
        .collect();
    if urls.is_empty() {
        bail!("--url needs at least one server");
    }
    Ok(urls)
}

/// Round-robin: the item that client `i` uses.
pub fn pick<T>(items: &[T], i: usize) -> &T {
    &items[i % items.len()]
}

/// Worker `index`'s share of `total` clients numbered 0…total-1 as one contiguous block: the blocks of workers
/// 0…workers-1 follow each other, cover every client once, and differ in size by at most one.
pub fn block(total: usize, workers: usize, index: usize) -> Range<usize> {
    let workers = workers.max(1);
    let (base, extra) = (total / workers, total % workers);
    let start = index * base + index.min(extra);
    let len = base + usize::from(index < extra);
    start.min(total)..(start + len).min(total)
}

/// Whether worker `index` of `workers` runs client `i` when clients are dealt out round-robin (client `i` to worker
/// `i % workers`), so that consecutive clients, e.g. the members of one room, land in different processes.
pub fn deals_to(i: usize, workers: usize, index: usize) -> bool {
    i % workers.max(1) == index
}

/// Sorted seqs (duplicates allowed) as inclusive ranges `[first, last]`.
pub fn to_ranges(sorted: &[u64]) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &seq in sorted {
        match ranges.last_mut() {
            Some((_, last)) if seq <= *last + 1 => *last = (*last).max(seq),
            _ => ranges.push((seq, seq)),
        }
    }
    ranges
}

/// The union of several lists of inclusive ranges, as sorted, disjoint, non-adjacent ranges.
pub fn union_ranges(lists: impl IntoIterator<Item = Vec<(u64, u64)>>) -> Vec<(u64, u64)> {
    let mut all: Vec<(u64, u64)> = lists.into_iter().flatten().collect();
    all.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (first, last) in all {
        match merged.last_mut() {
            Some((_, end)) if first <= *end + 1 => *end = (*end).max(last),
            _ => merged.push((first, last)),
        }
    }
    merged
}

/// How many seqs the ranges hold.
pub fn ranges_len(ranges: &[(u64, u64)]) -> u64 {
    ranges.iter().map(|(first, last)| last - first + 1).sum()
}

/// A histogram as text for a worker's report: its V2 serialization in base64.
pub fn encode_histogram(histogram: &Histogram<u64>) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(histogram, &mut bytes)
        .map_err(|err| anyhow::anyhow!("serializing a histogram: {err:?}"))?;
    Ok(BASE64.encode(bytes))
}

/// A histogram from [`encode_histogram`]'s text.
pub fn decode_histogram(text: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = BASE64.decode(text).context("a histogram is not base64")?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|err| anyhow::anyhow!("reading a histogram: {err:?}"))
}

/// Adds every worker's histogram (as text) into `into`: the merged percentiles are those of all samples together,
/// not an average of the workers' percentiles.
pub fn merge_histograms<'a>(
    into: &mut Histogram<u64>,
    encoded: impl IntoIterator<Item = &'a str>,
) -> anyhow::Result<()> {
    for text in encoded {
        into.add(decode_histogram(text)?)
            .map_err(|err| anyhow::anyhow!("merging histograms: {err:?}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_trimmed_and_required() {
        let given = vec![
            "http://127.0.0.1:8091/".to_owned(),
            "http://127.0.0.1:8092, http://127.0.0.1:8093,".to_owned(),
        ];
        assert_eq!(
            urls(&given).unwrap(),
            [
                "http://127.0.0.1:8091",
                "http://127.0.0.1:8092",
                "http://127.0.0.1:8093"
            ]
        );
        assert!(urls(&[" , ".to_owned()]).is_err());
        assert!(urls(&[]).is_err());
    }

    #[test]
    fn clients_go_round_robin_over_urls() {
        let urls = ["a", "b", "c"];
        let picked: Vec<&str> = (0..7).map(|i| *pick(&urls, i)).collect();
        assert_eq!(picked, ["a", "b", "c", "a", "b", "c", "a"]);
        assert_eq!(*pick(&["only"], 12345), "only");
    }

    #[test]
    fn blocks_cover_every_client_once() {
        // 100 000 connections in 6 processes: each stays under 20 000 open files.
        let sizes: Vec<usize> = (0..6).map(|w| block(100_000, 6, w).len()).collect();
        assert_eq!(sizes, [16_667, 16_667, 16_667, 16_667, 16_666, 16_666]);
        assert_eq!(block(100_000, 6, 0), 0..16_667);
        assert_eq!(block(100_000, 6, 5), 83_334..100_000);
        for (total, workers) in [(0, 3), (1, 3), (7, 3), (9, 3), (10, 1), (5, 8)] {
            let mut next = 0;
            for w in 0..workers {
                let share = block(total, workers, w);
                assert_eq!(share.start, next, "{total} over {workers}, worker {w}");
                next = share.end;
            }
            assert_eq!(next, total, "{total} over {workers}");
        }
        assert_eq!(block(10, 1, 0), 0..10);
    }

    #[test]
    fn dealing_gives_each_client_to_exactly_one_worker() {
        for workers in 1..5 {
            for i in 0..50 {
                let owners = (0..workers).filter(|&w| deals_to(i, workers, w)).count();
                assert_eq!(owners, 1, "client {i} over {workers} workers");
            }
        }
        let mine: Vec<usize> = (0..10).filter(|&i| deals_to(i, 3, 1)).collect();
        assert_eq!(mine, [1, 4, 7]);
    }

    #[test]
    fn seqs_become_ranges_and_ranges_merge() {
        assert_eq!(to_ranges(&[1, 2, 3, 5, 6, 6, 9]), [(1, 3), (5, 6), (9, 9)]);
        assert_eq!(to_ranges(&[]), []);
        let merged = union_ranges([vec![(1, 3), (9, 9)], vec![(4, 6)], vec![(2, 2), (11, 12)]]);
        assert_eq!(merged, [(1, 6), (9, 9), (11, 12)]);
        assert_eq!(ranges_len(&merged), 9);
    }

    #[test]
    fn merged_histograms_give_the_percentiles_of_all_samples() {
        // One worker saw 1000 fast deliveries, another 10 slow ones: the merged median is the fast one, where an
        // average of the two medians would say 505.
        let mut fast = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        fast.record_n(10, 1000).unwrap();
        let mut slow = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        slow.record_n(1000, 10).unwrap();
        let encoded = [
            encode_histogram(&fast).unwrap(),
            encode_histogram(&slow).unwrap(),
        ];
        let mut merged = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        merge_histograms(&mut merged, encoded.iter().map(String::as_str)).unwrap();
        assert_eq!(merged.len(), 1010);
        assert_eq!(merged.value_at_quantile(0.5), 10);
        // 0.99 × 1010 = 999.9: the 1000th sample, still a fast one; 0.999 × 1010 = 1008.99: a slow one.
        assert_eq!(merged.value_at_quantile(0.99), 10);
        assert_eq!(merged.value_at_quantile(0.999), 1000);
        assert_eq!(merged.max(), 1000);
        assert_eq!(merged.min(), 10);
        assert!(decode_histogram("not base64!").is_err());
    }
}
