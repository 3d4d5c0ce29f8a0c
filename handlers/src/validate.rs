//! The protocol's validation rules (PROTOCOL §7), one function per field. Each returns the cleaned value or an
//! [`Error::Validation`] whose sentence names the field and the rule it broke.

use std::collections::HashSet;
use std::sync::LazyLock;

use crate::error::{Error, Field};

/// Names nobody may register, compared case-insensitively.
const RESERVED_USERNAMES: &[&str] = &[
    "admin",
    "root",
    "system",
    "api",
    "www",
    "mail",
    "support",
    "info",
    "about",
    "moderator",
    "palaver",
];

/// The longest email address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// bcrypt reads at most 72 bytes; a longer password would be silently cut, so it is refused.
pub const MAX_PASSWORD_BYTES: usize = 72;
/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
});

/// A username: 3–30 ASCII letters, digits, `_` or `-`, and not a reserved name.
pub fn username(value: &str) -> Result<&str, Error> {
    let chars = value.chars().count();
    if !(3..=30).contains(&chars) {
        return Err(Error::invalid(
            Field::Username,
            "username must be 3 to 30 characters long",
        ));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::invalid(
            Field::Username,
            "username may contain only ASCII letters, digits, '_' and '-'",
        ));
    }
    if RESERVED_USERNAMES
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(value))
    {
        return Err(Error::invalid(Field::Username, "username is reserved"));
    }
    Ok(value)
}

/// An email address: an RFC 5322 addr-spec of at most 254 characters, without a display name.
pub fn email(value: &str) -> Result<&str, Error> {
    if value.is_empty() {
        return Err(Error::invalid(Field::Email, "email is required"));
    }
    if value.chars().count() > MAX_EMAIL_CHARS {
        return Err(Error::invalid(
            Field::Email,
            "email must be at most 254 characters long",
        ));
    }
    let options = email_address::Options::default().without_display_text();
    if email_address::EmailAddress::parse_with_options(value, options).is_err() {
        return Err(Error::invalid(Field::Email, "email is not a valid address"));
    }
    Ok(value)
}

/// An account password: at least 8 characters, at most 72 bytes, and not a common password.
pub fn password(value: &str) -> Result<&str, Error> {
    password_shape(Field::Password, value)?;
    if is_common_password(value) {
        return Err(Error::invalid(
            Field::Password,
            "password is too common; choose one that is harder to guess",
        ));
    }
    Ok(value)
}

/// A private room's password: the length rules of account passwords (bcrypt's limit applies alike).
pub fn room_password(value: &str) -> Result<&str, Error> {
    password_shape(Field::RoomPassword, value)
}

fn password_shape(field: Field, value: &str) -> Result<&str, Error> {
    if value.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(
            field,
            "password must be at least 8 characters long",
        ));
    }
    if value.len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid(
            field,
            "password must be at most 72 bytes in UTF-8",
        ));
    }
    Ok(value)
}

/// Whether `value` is on the common-password list, compared case-insensitively.
pub fn is_common_password(value: &str) -> bool {
    COMMON_PASSWORDS.contains(value.to_lowercase().as_str())
}

/// A room name: 2–50 characters of letters, digits, spaces, `_` and `-`, with no leading or trailing space.
pub fn room_name(value: &str) -> Result<&str, Error> {
    let chars = value.chars().count();
    if !(2..=50).contains(&chars) {
        return Err(Error::invalid(
            Field::RoomName,
            "room name must be 2 to 50 characters long",
        ));
    }
    if !value
        .chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || c == '_' || c == '-')
    {
        return Err(Error::invalid(
            Field::RoomName,
            "room name may contain only letters, digits, spaces, '_' and '-'",
        ));
    }
    if value.starts_with(' ') || value.ends_with(' ') {
        return Err(Error::invalid(
            Field::RoomName,
            "room name must not start or end with a space",
        ));
    }
    Ok(value)
}

/// The longest `client_msg_id` accepted, in characters.
pub const MAX_CLIENT_MSG_ID_CHARS: usize = 64;

/// Chat message content: at most `max_bytes` bytes of UTF-8, not empty after trimming, and without NUL characters
/// (PostgreSQL cannot store U+0000 in text). The content is kept as sent, untrimmed.
pub fn message_content(value: &str, max_bytes: usize) -> Result<&str, Error> {
    if value.len() > max_bytes {
        return Err(Error::MessageTooLarge { max: max_bytes });
    }
    if value.trim().is_empty() {
        return Err(Error::invalid(Field::Content, "message must not be empty"));
    }
    if value.contains('\0') {
        return Err(Error::invalid(
            Field::Content,
            "message must not contain NUL characters",
        ));
    }
    Ok(value)
}

/// The longest `:short_name:` a reaction may be, between its colons.
pub const MAX_SHORT_NAME_CHARS: usize = 32;

/// A reaction: one emoji (an extended grapheme cluster Unicode lists as an emoji, with or without its presentation
/// selector) or a `:short_name:` of 1–32 characters from `a-z`, `0-9`, `_`, `+` and `-`.
pub fn emoji(value: &str) -> Result<&str, Error> {
    if let Some(name) = value
        .strip_prefix(':')
        .and_then(|rest| rest.strip_suffix(':'))
    {
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_+-".contains(c);
        if (1..=MAX_SHORT_NAME_CHARS).contains(&name.len()) && name.chars().all(allowed) {
            return Ok(value);
        }
        return Err(Error::invalid(
            Field::Emoji,
            "a short name is 1 to 32 of a-z, 0-9, _, + and - between colons, like :thumbs_up:",
        ));
    }
    let bare = value.trim_end_matches('\u{fe0f}');
    let known = emojis::get(value).is_some()
        || emojis::get(bare).is_some()
        || emojis::get(&format!("{bare}\u{fe0f}")).is_some();
    if known {
        Ok(value)
    } else {
        Err(Error::invalid(
            Field::Emoji,
            "emoji must be one emoji, like 👍, or a :short_name:",
        ))
    }
}

/// A message's idempotency key: 1–64 characters, none of them a control character.
pub fn client_msg_id(value: &str) -> Result<&str, Error> {
    let chars = value.chars().count();
    if !(1..=MAX_CLIENT_MSG_ID_CHARS).contains(&chars) || value.chars().any(char::is_control) {
        // There is no `Field` for it; the sentence names it.
        return Err(Error::Malformed(
            "client_msg_id must be 1 to 64 characters without control characters".into(),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaction_is_one_emoji_or_a_short_name() {
        for good in [
            "👍",
            "👍🏽",
            "❤️",
            "❤",
            "🇫🇷",
            "👩‍👩‍👧",
            "1️⃣",
            ":thumbs_up:",
            ":+1:",
            ":a:",
            ":party-parrot:",
        ] {
            assert_eq!(emoji(good), Ok(good), "{good}");
        }
        let long = format!(":{}:", "a".repeat(33));
        for bad in [
            "",
            "a",
            "👍👍",
            "👍 ",
            "ok",
            "::",
            ":Thumbs:",
            ":thumbs up:",
            ":thumbs_up",
            long.as_str(),
            "\u{fe0f}",
            "<b>",
        ] {
            assert_eq!(
                emoji(bad).map_err(|err| err.code()),
                Err("invalid_emoji"),
                "{bad:?}"
            );
        }
    }

    fn field_of(result: Result<&str, Error>) -> Option<&'static str> {
        result.err().and_then(|err| err.field())
    }

    #[test]
    fn usernames() {
        let good = ["abc", "john_doe", "A-1", &"x".repeat(30), "Administrator"];
        for name in good {
            assert_eq!(username(name), Ok(name), "{name:?} should pass");
        }
        let bad = [
            "ab",
            &"x".repeat(31),
            "john doe",
            "jöhn",
            "a.b",
            "",
            "ADMIN",
            "Root",
            "palaver",
            "x\ny",
        ];
        for name in bad {
            assert_eq!(
                field_of(username(name)),
                Some("username"),
                "{name:?} should fail"
            );
        }
    }

    #[test]
    fn emails() {
        for address in ["a@b.co", "john.doe+chat@example.com", "x@localhost"] {
            assert_eq!(email(address), Ok(address), "{address:?} should pass");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        for address in [
            "",
            "plain",
            "a@",
            "@b.c",
            "John <j@example.com>",
            "a b@c.d",
            long.as_str(),
        ] {
            assert_eq!(
                field_of(email(address)),
                Some("email"),
                "{address:?} should fail"
            );
        }
    }

    #[test]
    fn passwords_refuse_short_long_and_common() {
        assert!(password("correct horse battery").is_ok());
        assert!(password("short").is_err());
        // 72 bytes pass, 73 are refused (bcrypt would silently cut them).
        assert!(password(&"k9".repeat(36)).is_ok());
        assert!(password(&format!("{}x", "k9".repeat(36))).is_err());
        // Multi-byte characters count as bytes against the limit: 25 × 3 bytes = 75.
        assert!(password(&"€".repeat(25)).is_err());
        for common in ["password", "PASSWORD", "12345678", "qwertyuiop", "iloveyou"] {
            assert!(password(common).is_err(), "{common:?} is common");
        }
    }

    #[test]
    fn the_common_list_holds_at_least_a_thousand_entries() {
        assert!(COMMON_PASSWORDS.len() >= 1000);
    }

    #[test]
    fn room_names() {
        for name in ["ab", "general chat", "Café_1", "dev-ops", &"r".repeat(50)] {
            assert_eq!(room_name(name), Ok(name), "{name:?} should pass");
        }
        for name in [
            "a",
            " lead",
            "trail ",
            "semi;colon",
            "tab\tbed",
            &"r".repeat(51),
            "<script>",
        ] {
            assert_eq!(
                field_of(room_name(name)),
                Some("name"),
                "{name:?} should fail"
            );
        }
    }

    #[test]
    fn message_contents() {
        let max = 16;
        for content in ["hi", " padded ", "ünïcødé", &"x".repeat(16), "line\nbreak"] {
            assert_eq!(
                message_content(content, max),
                Ok(content),
                "{content:?} should pass"
            );
        }
        for content in ["", " ", "\t\n ", "a\0b", "\0"] {
            assert_eq!(
                field_of(message_content(content, max)),
                Some("content"),
                "{content:?} should fail"
            );
        }
        // The limit counts bytes: 6 × 3 bytes = 18 > 16.
        for content in [&"x".repeat(17), &"€".repeat(6)] {
            assert_eq!(
                message_content(content, max),
                Err(Error::MessageTooLarge { max: 16 }),
                "{content:?} is too large"
            );
        }
    }

    #[test]
    fn client_msg_ids() {
        for id in [
            "a",
            "0190c1f2-7a4b-7c3d-9e8f-001122334455",
            &"k".repeat(64),
            "ключ",
        ] {
            assert_eq!(client_msg_id(id), Ok(id), "{id:?} should pass");
        }
        for id in [
            "",
            &"k".repeat(65),
            "tab\there",
            "nul\0",
            "new\nline",
            "\u{7f}",
        ] {
            let err = client_msg_id(id).unwrap_err();
            assert!(err.to_string().contains("client_msg_id"), "{id:?}: {err}");
            assert_eq!(err.kind(), crate::ErrorKind::Invalid);
        }
    }
}
