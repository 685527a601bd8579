//! Windows command lines: arguments escaped and joined the way
//! `CommandLineToArgvW` reads them back, and split by its rules.

/// Quotes one argument the way Windows' `CommandLineToArgvW` reads it back.
pub fn escape_arg(arg: &str) -> String {
    if arg.is_empty() {
        return "\"\"".to_owned();
    }
    let needs_backslash = arg.contains(['"', '\\']);
    let has_space = arg.contains([' ', '\t']);
    if !needs_backslash && !has_space {
        return arg.to_owned();
    }
    if !needs_backslash {
        return format!("\"{arg}\"");
    }
    let mut out = String::with_capacity(arg.len() + 8);
    if has_space {
        out.push('"');
    }
    let mut slashes = 0usize;
    for c in arg.chars() {
        match c {
            '\\' => slashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', slashes + 1));
                slashes = 0;
            }
            _ => slashes = 0,
        }
        out.push(c);
    }
    if has_space {
        out.extend(std::iter::repeat_n('\\', slashes));
        out.push('"');
    }
    out
}

/// The command line of `args`: each escaped, joined by spaces.
pub fn join_args(args: &[String]) -> String {
    args.iter()
        .map(|a| escape_arg(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits a command line into arguments by `CommandLineToArgvW`'s rules.
pub fn split_command_line(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_arg = false;
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let mut n = 1;
                while chars.peek() == Some(&'\\') {
                    chars.next();
                    n += 1;
                }
                in_arg = true;
                if chars.peek() == Some(&'"') {
                    cur.extend(std::iter::repeat_n('\\', n / 2));
                    if n % 2 == 1 {
                        chars.next();
                        cur.push('"');
                    }
                } else {
                    cur.extend(std::iter::repeat_n('\\', n));
                }
            }
            '"' => {
                in_arg = true;
                if quoted && chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = !quoted;
                }
            }
            ' ' | '\t' if !quoted => {
                if in_arg {
                    args.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            _ => {
                in_arg = true;
                cur.push(c);
            }
        }
    }
    if in_arg {
        args.push(cur);
    }
    args
}
