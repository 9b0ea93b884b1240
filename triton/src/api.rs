//! The Triton API versions this backend is built for, and the check `TRITONBACKEND_Initialize`
//! runs: the server loads any `libtriton_*.so` without comparing versions, so a backend that
//! skipped this would call into an incompatible ABI.

/// TRITONBACKEND API of the vendored headers (`TRITONBACKEND_API_VERSION_MAJOR/MINOR`).
pub const REQUIRED_BACKEND_API: (u32, u32) = (1, 19);
/// TRITONSERVER API of the vendored headers (`TRITONSERVER_API_VERSION_MAJOR/MINOR`).
pub const REQUIRED_SERVER_API: (u32, u32) = (1, 34);

/// Ok when a server offering API `have` can run code built against `want`: same major version
/// (majors break the ABI) and at least the minor version (minors only add functions), the rule
/// the headers themselves state.
pub fn check(api: &str, have: (u32, u32), want: (u32, u32)) -> Result<(), String> {
    if have.0 == want.0 && have.1 >= want.1 {
        Ok(())
    } else {
        Err(format!(
            "the dvt backend was built against the {api} API {}.{} (Triton 2.51, r24.10 \
             headers) but this server offers {}.{}: use a Triton whose {api} API is {}.x with \
             x >= {}",
            want.0, want.1, have.0, have.1, want.0, want.1
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_major_and_newer_minor_pass_anything_else_fails() {
        assert!(check("TRITONBACKEND", (1, 19), (1, 19)).is_ok());
        assert!(check("TRITONBACKEND", (1, 21), (1, 19)).is_ok());
        let old = check("TRITONBACKEND", (1, 18), (1, 19)).unwrap_err();
        assert!(old.contains("offers 1.18"), "{old}");
        assert!(check("TRITONBACKEND", (2, 0), (1, 19)).is_err());
        assert!(check("TRITONSERVER", (0, 40), (1, 34)).is_err());
    }

    /// The declarations are hand-written: compare each with the pinned headers.
    #[test]
    fn ffi_matches_the_vendored_headers() {
        let ffi = include_str!("ffi.rs");
        let headers = [
            include_str!("../include/triton/core/tritonserver.h"),
            include_str!("../include/triton/core/tritonbackend.h"),
        ]
        .concat();
        let version = |name: &str| -> u32 {
            let at = headers.find(&format!("#define {name} ")).expect(name);
            headers[at..]
                .split_whitespace()
                .nth(2)
                .unwrap()
                .parse()
                .unwrap()
        };
        assert_eq!(
            REQUIRED_BACKEND_API,
            (
                version("TRITONBACKEND_API_VERSION_MAJOR"),
                version("TRITONBACKEND_API_VERSION_MINOR")
            )
        );
        assert_eq!(
            REQUIRED_SERVER_API,
            (
                version("TRITONSERVER_API_VERSION_MAJOR"),
                version("TRITONSERVER_API_VERSION_MINOR")
            )
        );
        let mut functions = 0;
        for line in ffi.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("pub fn ") else {
                continue;
            };
            let name = &rest[..rest.find('(').unwrap()];
            let ours = params(&rest[name.len()..]);
            let at = declaration(&headers, name)
                .unwrap_or_else(|| panic!("{name} is not declared in the vendored headers"));
            let theirs = params(&headers[at + name.len()..]);
            assert_eq!(
                ours, theirs,
                "{name}: parameter count differs from the header"
            );
            functions += 1;
        }
        assert!(functions > 30, "parsed only {functions} declarations");
        let mut constants = 0;
        for line in ffi.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("pub const ") else {
                continue;
            };
            let name = &rest[..rest.find(':').unwrap()];
            let value: u32 = rest[rest.find('=').unwrap() + 1..]
                .trim()
                .trim_end_matches(';')
                .parse()
                .unwrap();
            assert_eq!(
                Some(value),
                enum_value(&headers, name),
                "{name} differs from the header's enum"
            );
            constants += 1;
        }
        assert!(constants > 20, "parsed only {constants} constants");
    }

    /// Where `name(` is declared: not in a comment, after a space, `*` or a line break.
    fn declaration(headers: &str, name: &str) -> Option<usize> {
        let pat = format!("{name}(");
        headers.match_indices(&pat).map(|(i, _)| i).find(|&i| {
            let line = &headers[headers[..i].rfind('\n').map_or(0, |n| n + 1)..i];
            let before = headers[..i].chars().last();
            !line.trim_start().starts_with("//") && matches!(before, Some(' ' | '*' | '\n'))
        })
    }

    /// Number of parameters of the list that starts at `s` (at or before its `(`).
    fn params(s: &str) -> usize {
        let open = s.find('(').unwrap();
        let mut depth = 0;
        let mut commas = 0;
        let mut body = String::new();
        for c in s[open..].chars() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                ',' if depth == 1 => commas += 1,
                _ => {}
            }
            if depth >= 1 {
                body.push(c);
            }
        }
        let body = body.trim_start_matches('(').trim();
        if body.is_empty() || body == "void" {
            0
        } else {
            commas + 1
        }
    }

    /// The value of enumerator `name` in the headers (C rules: explicit or previous + 1).
    fn enum_value(headers: &str, name: &str) -> Option<u32> {
        let mut rest = headers;
        while let Some(at) = rest.find("typedef enum") {
            let block = &rest[at..];
            let body = &block[block.find('{')? + 1..block.find('}')?];
            let mut next = 0u32;
            for entry in body.split(',') {
                let entry: String = entry
                    .lines()
                    .map(|l| l.split("//").next().unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut parts = entry.split('=');
                let n = parts.next()?.trim();
                if n.is_empty() {
                    continue;
                }
                let v = match parts.next() {
                    Some(v) => {
                        let v = v.trim();
                        v.strip_prefix("0x")
                            .map(|h| u32::from_str_radix(h, 16).unwrap())
                            .unwrap_or_else(|| v.parse().unwrap())
                    }
                    None => next,
                };
                if n == name {
                    return Some(v);
                }
                next = v + 1;
            }
            rest = &block[block.find('}')?..];
        }
        None
    }
}
