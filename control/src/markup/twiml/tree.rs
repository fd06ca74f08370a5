//! A small XML element tree from quick-xml events: what TwiML needs (elements, attributes,
//! text), with entities decoded and comments, declarations and processing instructions dropped.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) attrs: Vec<(String, String)>,
    pub(crate) children: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// All text inside, descendants included (SSML markup inside `<Say>` keeps its words).
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Element(e) => {
                    if !out.is_empty() && !out.ends_with(' ') {
                        out.push(' ');
                    }
                    out.push_str(&e.text());
                }
            }
        }
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// Larger documents are refused (Twilio's limit on a fetched document is 64 KB).
pub(crate) const MAX_DOCUMENT: usize = 64 * 1024;
/// TwiML nests three deep (`<Response><Gather><Say>`); anything far deeper is hostile.
pub(crate) const MAX_DEPTH: usize = 16;
/// Elements in one document.
pub(crate) const MAX_ELEMENTS: usize = 4096;

/// Parses a document into its root element; the error says what is wrong and where.
pub(crate) fn parse(xml: &str) -> Result<Element, String> {
    if xml.len() > MAX_DOCUMENT {
        return Err(format!("the document is over {MAX_DOCUMENT} bytes"));
    }
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    let mut elements = 0usize;
    loop {
        let at = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| format!("at byte {at}: {e}"))?;
        if matches!(event, Event::Start(_) | Event::Empty(_)) {
            elements += 1;
            if elements > MAX_ELEMENTS {
                return Err(format!("more than {MAX_ELEMENTS} elements"));
            }
        }
        match event {
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("elements nested over {MAX_DEPTH} deep"));
                }
                stack.push(element(&start)?)
            }
            Event::Empty(start) => {
                let e = element(&start)?;
                close(&mut stack, &mut root, e)?;
            }
            Event::End(_) => {
                let e = stack.pop().ok_or("an end tag without its start")?;
                close(&mut stack, &mut root, e)?;
            }
            // Entities come as their own events, so text needs no unescaping.
            Event::Text(t) => push_text(&mut stack, t.xml10_content().into_owned())?,
            Event::GeneralRef(r) => {
                let text = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_xml_entity(&r)
                        .ok_or_else(|| format!("unknown entity &{};", &*r))?
                        .to_owned(),
                };
                push_text(&mut stack, text)?;
            }
            Event::CData(t) => push_text(&mut stack, t.into_inner().into_owned())?,
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(format!("<{}> is not closed", stack[stack.len() - 1].name));
    }
    root.ok_or_else(|| "no root element".to_owned())
}

fn element(start: &BytesStart<'_>) -> Result<Element, String> {
    let name = start.name().as_ref().to_owned();
    let mut attrs = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(|e| format!("<{name}>: {e}"))?;
        let key = a.key.as_ref().to_owned();
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| format!("<{name} {key}>: {e}"))?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
    })
}

fn close(stack: &mut [Element], root: &mut Option<Element>, e: Element) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(e)),
        None if root.is_none() => *root = Some(e),
        None => return Err(format!("<{}> after the root element", e.name)),
    }
    Ok(())
}

fn push_text(stack: &mut [Element], text: String) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Node::Text(t)) = parent.children.last_mut() {
                t.push_str(&text);
            } else {
                parent.children.push(Node::Text(text));
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err("text outside the root element".into()),
    }
}
