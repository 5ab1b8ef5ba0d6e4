//! Reading the landing page in tests: its tables as rows of cells, and a
//! cell's text without markup. The page is the exporter's own, regular HTML
//! (every cell closed, no nested tables), so splitting on tags is enough.

/// Rows of the table with `class` (after its header row), each as its
/// cells' inner HTML.
pub fn rows(page: &str, class: &str) -> Vec<Vec<String>> {
    let Some(start) = page.find(&format!("<table class=\"{class}\">")) else {
        panic!("no table {class} in the page:\n{page}");
    };
    let end = start + page[start..].find("</table>").expect("table closed");
    page[start..end]
        .split("<tr")
        .skip(2)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let inner = &cell[cell.find('>').expect("cell opens") + 1..];
                    inner[..inner.find("</td>").expect("cell closed")].to_owned()
                })
                .collect()
        })
        .collect()
}

/// `html` without tags, entities of the five escaped characters decoded.
pub fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Position of `needle` in `page`, or a panic naming it.
pub fn at(page: &str, needle: &str) -> usize {
    page.find(needle)
        .unwrap_or_else(|| panic!("no {needle:?} in the page:\n{page}"))
}
