//! How search splits text into words, the same for every store: runs of letters and digits (any script), compared
//! lower-cased. The SQL engines index with their own tokenizers (FTS5's `unicode61`, PostgreSQL's `simple`), which
//! split text the same way; the query is split here.

use std::ops::Range;

/// The words of `text`, lower-cased, with the byte range of each in `text`.
pub fn words(text: &str) -> Vec<(Range<usize>, String)> {
    let mut found = Vec::new();
    let mut start = None;
    for (index, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(index),
            (false, Some(from)) => {
                found.push((from..index, text[from..index].to_lowercase()));
                start = None;
            }
            _ => {}
        }
    }
    found
}

/// The distinct words of a query, in the order typed.
pub fn terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for (_, word) in words(query) {
        if !terms.contains(&word) {
            terms.push(word);
        }
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_runs_of_letters_and_digits_in_any_script() {
        let text = "Hello, wörld! ship-it 2026 日本語 x_y";
        let found: Vec<String> = words(text).into_iter().map(|(_, w)| w).collect();
        assert_eq!(
            found,
            ["hello", "wörld", "ship", "it", "2026", "日本語", "x", "y"]
        );
        let (range, _) = &words(text)[1];
        assert_eq!(&text[range.clone()], "wörld");
        assert_eq!(terms("Deploy deploy, DEPLOY now"), ["deploy", "now"]);
        assert!(terms(" *** ").is_empty());
    }
}
