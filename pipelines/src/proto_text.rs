//! Protobuf descriptors printed back as `.proto` source. Confluent's `ProtobufSerializer`
//! registers a schema as a base64-encoded `FileDescriptorProto`; Confluent's registry stores and
//! shows such a schema as `.proto` text (only `format=serialized` gives the descriptor back), and
//! so does Weir's. [`as_proto_text`] gives that text, but only when compiling it with
//! [`proto_files::compile`] gives back the very descriptor it was printed from
//! ([`round_trips`]): a schema is never changed by being stored as text. What the printer cannot
//! print faithfully (`editions` files, options it does not know, such as custom options, whose
//! values `prost` drops when it decodes the descriptor) stays base64.
//!
//! Written by hand: no maintained crate prints a descriptor as `.proto` source (`protox` and
//! `prost-reflect` parse and compile `.proto` files, they do not write them). Options are
//! printed generically, through `prost-reflect`'s dynamic view of the options messages.

use std::collections::HashSet;
use std::fmt;

use protox::prost_reflect::prost_types::field_descriptor_proto::{Label, Type};
use protox::prost_reflect::prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    ServiceDescriptorProto,
};
use protox::prost_reflect::{FieldDescriptor, ReflectMessage, Value};

use crate::proto_files;

/// Why a descriptor was not printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unprintable(pub String);

impl fmt::Display for Unprintable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot print the descriptor as .proto source: {}",
            self.0
        )
    }
}

impl std::error::Error for Unprintable {}

type Result<T> = std::result::Result<T, Unprintable>;

fn refuse<T>(why: impl Into<String>) -> Result<T> {
    Err(Unprintable(why.into()))
}

/// The `.proto` text of the base64 `FileDescriptorProto` `text`, when it is one, nothing was
/// lost decoding it, and the text compiles back to the same descriptor (its imports looked up
/// among `imports`, import path → schema text, then Google's well-known types). `None` means:
/// keep the schema as it is.
pub fn as_proto_text<'a>(
    text: &str,
    imports: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<String> {
    let file = proto_files::lossless_descriptor(text)?;
    let imports: Vec<(&str, &str)> = imports.into_iter().collect();
    [TypeNames::Shortest, TypeNames::FullyQualified]
        .into_iter()
        .find_map(|names| {
            let printed = print(&file, names).ok()?;
            round_trips(&file, &printed, imports.iter().copied()).then_some(printed)
        })
}

/// How [`print`] writes the names of the types a file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeNames {
    /// The shortest name that resolves to the type from where it is used, as far as the file
    /// and the names it uses tell (a type of an import that none of them names could still
    /// shadow one: [`as_proto_text`] then falls back to fully qualified names).
    Shortest,
    /// Fully qualified, with a leading dot (`.acme.Customer`): always the right type.
    FullyQualified,
}

/// Whether `text` compiles (with `imports`, as [`proto_files::compile`] takes them) to `file`.
/// Compared without what the text cannot carry or what only restates a default: the file's
/// name (the text is compiled under `file`'s own name), `source_code_info`, `json_name` where
/// it is the default one (`prost-reflect` fills it in on every field it compiles, as `protoc`
/// does for plugins, while a descriptor from Confluent's serializers usually leaves it out),
/// options messages with nothing set (the same as no options; `prost-reflect`'s own
/// well-known types carry such empty ones) and `syntax = "proto2"` (the same as none, which is
/// what `protox` and `protoc` write for proto2).
pub fn round_trips<'a>(
    file: &FileDescriptorProto,
    text: &str,
    imports: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> bool {
    let name = file
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or("schema.proto");
    let Ok(pool) = proto_files::compile(name, text, imports) else {
        return false;
    };
    let Some(compiled) = pool.get_file_by_name(name) else {
        return false;
    };
    let mut want = file.clone();
    want.name = Some(name.to_string());
    normalized(compiled.file_descriptor_proto().clone()) == normalized(want)
}

/// `file` as `.proto` source (proto2 or proto3), or why it cannot be printed, with the type
/// names it uses written as `names` says.
pub fn print(file: &FileDescriptorProto, names: TypeNames) -> Result<String> {
    let proto3 = match file.syntax.as_deref() {
        None | Some("" | "proto2") => false,
        Some("proto3") => true,
        Some(other) => return refuse(format!("syntax `{other}` (only proto2 and proto3 print)")),
    };
    let mut p = Printer {
        out: String::new(),
        proto3,
        symbols: match names {
            TypeNames::Shortest => Some(symbols(file)),
            TypeNames::FullyQualified => None,
        },
    };
    // Written for proto2 too, where a descriptor may leave it out (the same thing).
    let syntax = if proto3 { "proto3" } else { "proto2" };
    p.line(0, &format!("syntax = \"{syntax}\";"));
    let scope = match &file.package {
        Some(package) => {
            dotted(package)?;
            p.line(0, &format!("package {package};"));
            format!(".{package}")
        }
        None => String::new(),
    };
    for (i, dep) in file.dependency.iter().enumerate() {
        let i = i32::try_from(i).map_err(|_| Unprintable("too many imports".into()))?;
        let kind = if file.public_dependency.contains(&i) {
            "public "
        } else if file.weak_dependency.contains(&i) {
            "weak "
        } else {
            ""
        };
        p.line(0, &format!("import {kind}{};", quote(dep)));
    }
    if let Some(options) = &file.options {
        p.option_lines(0, options)?;
    }
    for message in &file.message_type {
        p.message(0, message, &scope)?;
    }
    for e in &file.enum_type {
        p.enumeration(0, e)?;
    }
    for service in &file.service {
        p.service(0, service, &scope)?;
    }
    p.extensions(0, &file.extension, &scope)?;
    Ok(p.out)
}

struct Printer {
    out: String,
    proto3: bool,
    /// The names known to exist, for [`TypeNames::Shortest`].
    symbols: Option<HashSet<String>>,
}

impl Printer {
    /// How to write the type `name` (fully qualified) where `scope` names things.
    fn type_ref(&self, name: &str, scope: &str) -> Result<String> {
        let name = type_name(name)?;
        let Some(symbols) = &self.symbols else {
            return Ok(name);
        };
        // The shortest suffix of the name that resolves to it: a relative name's first part
        // is looked up in the scope, then in each scope around it.
        let parts: Vec<&str> = name[1..].split('.').collect();
        let resolves = |candidate: &str| {
            let first = candidate.split('.').next().unwrap_or_default();
            let mut at = scope;
            loop {
                if symbols.contains(&format!("{at}.{first}")) {
                    return format!("{at}.{candidate}") == name;
                }
                match at.rfind('.') {
                    Some(dot) => at = &at[..dot],
                    None => return false,
                }
            }
        };
        Ok((0..parts.len())
            .rev()
            .map(|k| parts[k..].join("."))
            .find(|candidate| resolves(candidate))
            .unwrap_or(name))
    }

    /// A field's type as written in a declaration in `scope`.
    fn type_text(&self, field: &FieldDescriptorProto, scope: &str) -> Result<String> {
        let scalar = match kind(field)? {
            Type::Message | Type::Enum | Type::Group => {
                return self.type_ref(field.type_name(), scope);
            }
            Type::Double => "double",
            Type::Float => "float",
            Type::Int64 => "int64",
            Type::Uint64 => "uint64",
            Type::Int32 => "int32",
            Type::Fixed64 => "fixed64",
            Type::Fixed32 => "fixed32",
            Type::Bool => "bool",
            Type::String => "string",
            Type::Bytes => "bytes",
            Type::Uint32 => "uint32",
            Type::Sfixed32 => "sfixed32",
            Type::Sfixed64 => "sfixed64",
            Type::Sint32 => "sint32",
            Type::Sint64 => "sint64",
        };
        Ok(scalar.to_string())
    }

    fn line(&mut self, depth: usize, text: &str) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// `option name = value;` for each option set.
    fn option_lines<M: ReflectMessage>(&mut self, depth: usize, options: &M) -> Result<()> {
        for (name, value) in option_values(options)? {
            self.line(depth, &format!("option {name} = {value};"));
        }
        Ok(())
    }

    fn message(&mut self, depth: usize, message: &DescriptorProto, scope: &str) -> Result<()> {
        let name = ident(message.name())?;
        self.line(depth, &format!("message {name} {{"));
        self.message_body(depth + 1, message, &format!("{scope}.{name}"))?;
        self.line(depth, "}");
        Ok(())
    }

    /// A message's body; `full` is its fully qualified name with a leading dot.
    fn message_body(&mut self, depth: usize, message: &DescriptorProto, full: &str) -> Result<()> {
        if let Some(options) = &message.options {
            self.option_lines(depth, options)?;
        }
        // Map entries and groups are nested types that their field declares: they are printed
        // with it, where the field comes, so that fields and nested types keep their order.
        let owned = owned_types(message, full)?;
        let mut next = 0;
        for (j, nested) in message.nested_type.iter().enumerate() {
            match owned.iter().position(|o| *o == Some(j)) {
                Some(i) if i < next => return refuse("nested types out of their fields' order"),
                Some(i) => self.fields(depth, message, full, &owned, &mut next, i + 1)?,
                None if nested.options.as_ref().and_then(|o| o.map_entry) == Some(true) => {
                    return refuse(format!("map entry `{}` without its field", nested.name()));
                }
                None => self.message(depth, nested, full)?,
            }
        }
        self.fields(depth, message, full, &owned, &mut next, message.field.len())?;
        for e in &message.enum_type {
            self.enumeration(depth, e)?;
        }
        self.extensions(depth, &message.extension, full)?;
        for range in &message.extension_range {
            let (Some(start), Some(end)) = (range.start, range.end) else {
                return refuse("extension range without bounds");
            };
            let options = match &range.options {
                Some(o) => brackets(option_values(o)?),
                None => String::new(),
            };
            // `max` is the highest field number, or `i32::MAX` in a message set.
            let last = end - 1;
            let range = if last >= 536_870_911 && last > start {
                format!("{start} to max")
            } else {
                span(start, last)
            };
            self.line(depth, &format!("extensions {range}{options};"));
        }
        let ranges: Vec<String> = message
            .reserved_range
            .iter()
            .map(|r| span(r.start(), r.end() - 1))
            .collect();
        self.reserved(depth, &ranges, &message.reserved_name)?;
        Ok(())
    }

    /// Prints the fields from `*next` up to `end` (a oneof whole, even past `end`).
    fn fields(
        &mut self,
        depth: usize,
        message: &DescriptorProto,
        full: &str,
        owned: &[Option<usize>],
        next: &mut usize,
        end: usize,
    ) -> Result<()> {
        let nested = |i: usize| owned[i].map(|j| &message.nested_type[j]);
        while *next < end {
            let field = &message.field[*next];
            let Some(k) = real_oneof(field)? else {
                self.field(depth, field, false, nested(*next), full)?;
                *next += 1;
                continue;
            };
            let Some(oneof) = message.oneof_decl.get(k) else {
                return refuse(format!(
                    "field `{}` in a oneof that is missing",
                    field.name()
                ));
            };
            self.line(depth, &format!("oneof {} {{", ident(oneof.name())?));
            if let Some(options) = &oneof.options {
                self.option_lines(depth + 1, options)?;
            }
            while *next < message.field.len() && real_oneof(&message.field[*next])? == Some(k) {
                self.field(depth + 1, &message.field[*next], true, nested(*next), full)?;
                *next += 1;
            }
            self.line(depth, "}");
        }
        Ok(())
    }

    /// One field, declared in `full`; `nested` is the map entry or group type it declares.
    fn field(
        &mut self,
        depth: usize,
        field: &FieldDescriptorProto,
        in_oneof: bool,
        nested: Option<&DescriptorProto>,
        full: &str,
    ) -> Result<()> {
        let name = ident(field.name())?;
        let Some(number) = field.number else {
            return refuse(format!("field `{name}` without a number"));
        };
        let label = match (in_oneof, field.proto3_optional(), label(field)?) {
            (true, _, _) => "",
            (false, true, _) => "optional ",
            (false, false, Label::Optional) if self.proto3 => "",
            (false, false, Label::Optional) => "optional ",
            (false, false, Label::Required) => "required ",
            (false, false, Label::Repeated) => "repeated ",
        };
        let options = brackets(field_options(field)?);
        match (kind(field)?, nested) {
            (Type::Group, Some(group)) => {
                let group_name = ident(group.name())?;
                self.line(
                    depth,
                    &format!("{label}group {group_name} = {number}{options} {{"),
                );
                self.message_body(depth + 1, group, &format!("{full}.{group_name}"))?;
                self.line(depth, "}");
            }
            (Type::Group, None) => return refuse(format!("group field `{name}` without its type")),
            (_, Some(entry)) => {
                let key = entry.field.iter().find(|f| f.number == Some(1));
                let value = entry.field.iter().find(|f| f.number == Some(2));
                let (Some(key), Some(value)) = (key, value) else {
                    return refuse(format!("map entry `{}` without key or value", entry.name()));
                };
                let (key, value) = (self.type_text(key, full)?, self.type_text(value, full)?);
                self.line(
                    depth,
                    &format!("map<{key}, {value}> {name} = {number}{options};"),
                );
            }
            _ => {
                let ty = self.type_text(field, full)?;
                self.line(depth, &format!("{label}{ty} {name} = {number}{options};"));
            }
        }
        Ok(())
    }

    /// `extend` blocks in `scope`, one per run of extensions of the same message.
    fn extensions(
        &mut self,
        depth: usize,
        extensions: &[FieldDescriptorProto],
        scope: &str,
    ) -> Result<()> {
        let mut i = 0;
        while let Some(first) = extensions.get(i) {
            let extendee = self.type_ref(first.extendee(), scope)?;
            self.line(depth, &format!("extend {extendee} {{"));
            while let Some(ext) = extensions.get(i).filter(|e| e.extendee == first.extendee) {
                if ext.oneof_index.is_some() {
                    return refuse(format!("extension `{}` in a oneof", ext.name()));
                }
                self.field(depth + 1, ext, false, None, scope)?;
                i += 1;
            }
            self.line(depth, "}");
        }
        Ok(())
    }

    fn enumeration(&mut self, depth: usize, e: &EnumDescriptorProto) -> Result<()> {
        self.line(depth, &format!("enum {} {{", ident(e.name())?));
        if let Some(options) = &e.options {
            self.option_lines(depth + 1, options)?;
        }
        for value in &e.value {
            let Some(number) = value.number else {
                return refuse(format!("enum value `{}` without a number", value.name()));
            };
            let options = match &value.options {
                Some(o) => brackets(option_values(o)?),
                None => String::new(),
            };
            let name = ident(value.name())?;
            self.line(depth + 1, &format!("{name} = {number}{options};"));
        }
        // Enum reserved ranges include their end.
        let ranges: Vec<String> = e
            .reserved_range
            .iter()
            .map(|r| span(r.start(), r.end()))
            .collect();
        self.reserved(depth + 1, &ranges, &e.reserved_name)?;
        self.line(depth, "}");
        Ok(())
    }

    fn reserved(&mut self, depth: usize, ranges: &[String], names: &[String]) -> Result<()> {
        if !ranges.is_empty() {
            self.line(depth, &format!("reserved {};", ranges.join(", ")));
        }
        if !names.is_empty() {
            let names: Vec<String> = names
                .iter()
                .map(|n| ident(n).map(quote))
                .collect::<Result<_>>()?;
            self.line(depth, &format!("reserved {};", names.join(", ")));
        }
        Ok(())
    }

    fn service(
        &mut self,
        depth: usize,
        service: &ServiceDescriptorProto,
        scope: &str,
    ) -> Result<()> {
        let name = ident(service.name())?;
        let scope = format!("{scope}.{name}");
        self.line(depth, &format!("service {name} {{"));
        if let Some(options) = &service.options {
            self.option_lines(depth + 1, options)?;
        }
        for method in &service.method {
            let stream = |on: bool| if on { "stream " } else { "" };
            let head = format!(
                "rpc {} ({}{}) returns ({}{})",
                ident(method.name())?,
                stream(method.client_streaming()),
                self.type_ref(method.input_type(), &scope)?,
                stream(method.server_streaming()),
                self.type_ref(method.output_type(), &scope)?,
            );
            let options = match &method.options {
                Some(o) => option_values(o)?,
                None => Vec::new(),
            };
            if options.is_empty() {
                self.line(depth + 1, &format!("{head};"));
            } else {
                self.line(depth + 1, &format!("{head} {{"));
                for (name, value) in options {
                    self.line(depth + 2, &format!("option {name} = {value};"));
                }
                self.line(depth + 1, "}");
            }
        }
        self.line(depth, "}");
        Ok(())
    }
}

/// The names known to exist for a file: what it defines (packages, messages, their fields,
/// enums and their values, which live beside the enum, services and their methods) and the
/// types it uses, with every scope around each.
fn symbols(file: &FileDescriptorProto) -> HashSet<String> {
    fn add(out: &mut HashSet<String>, name: &str) {
        let mut at = name;
        while !at.is_empty() && out.insert(at.to_string()) {
            at = at.rfind('.').map_or("", |dot| &at[..dot]);
        }
    }
    fn field(out: &mut HashSet<String>, scope: &str, f: &FieldDescriptorProto) {
        add(out, &format!("{scope}.{}", f.name()));
        add(out, f.type_name());
        add(out, f.extendee());
    }
    fn enumeration(out: &mut HashSet<String>, scope: &str, e: &EnumDescriptorProto) {
        add(out, &format!("{scope}.{}", e.name()));
        for v in &e.value {
            add(out, &format!("{scope}.{}", v.name()));
        }
    }
    fn message(out: &mut HashSet<String>, scope: &str, m: &DescriptorProto) {
        let full = format!("{scope}.{}", m.name());
        add(out, &full);
        for f in m.field.iter().chain(&m.extension) {
            field(out, &full, f);
        }
        for o in &m.oneof_decl {
            add(out, &format!("{full}.{}", o.name()));
        }
        m.nested_type.iter().for_each(|n| message(out, &full, n));
        m.enum_type.iter().for_each(|e| enumeration(out, &full, e));
    }
    let mut out = HashSet::new();
    let scope = file
        .package
        .as_ref()
        .map_or(String::new(), |p| format!(".{p}"));
    add(&mut out, &scope);
    file.message_type
        .iter()
        .for_each(|m| message(&mut out, &scope, m));
    file.enum_type
        .iter()
        .for_each(|e| enumeration(&mut out, &scope, e));
    file.extension
        .iter()
        .for_each(|f| field(&mut out, &scope, f));
    for s in &file.service {
        let full = format!("{scope}.{}", s.name());
        add(&mut out, &full);
        for m in &s.method {
            add(&mut out, &format!("{full}.{}", m.name()));
            add(&mut out, m.input_type());
            add(&mut out, m.output_type());
        }
    }
    out
}

/// For each field of `message`, the nested type it declares: its map entry, or its group.
fn owned_types(message: &DescriptorProto, full: &str) -> Result<Vec<Option<usize>>> {
    let mut owned: Vec<Option<usize>> = Vec::with_capacity(message.field.len());
    for field in &message.field {
        let nested = message
            .nested_type
            .iter()
            .position(|n| field.type_name() == format!("{full}.{}", n.name()));
        let is_entry = |j: usize| {
            message.nested_type[j]
                .options
                .as_ref()
                .and_then(|o| o.map_entry)
                == Some(true)
        };
        let declared = match (kind(field)?, nested) {
            (Type::Group, found) => found,
            (Type::Message, Some(j)) if is_entry(j) => {
                if label(field)? != Label::Repeated || field.oneof_index.is_some() {
                    return refuse(format!("field `{}` uses a map entry", field.name()));
                }
                Some(j)
            }
            _ => None,
        };
        if declared.is_some() && owned.contains(&declared) {
            return refuse(format!("two fields declare the type of `{}`", field.name()));
        }
        owned.push(declared);
    }
    Ok(owned)
}

/// The real oneof a field is in (not the synthetic one of a proto3 `optional` field).
fn real_oneof(field: &FieldDescriptorProto) -> Result<Option<usize>> {
    match field.oneof_index {
        Some(_) if field.proto3_optional() => Ok(None),
        Some(k) => usize::try_from(k)
            .map(Some)
            .map_err(|_| Unprintable(format!("field `{}`: oneof index {k}", field.name()))),
        None => Ok(None),
    }
}

fn label(field: &FieldDescriptorProto) -> Result<Label> {
    field
        .label
        .and_then(|l| Label::try_from(l).ok())
        .ok_or_else(|| Unprintable(format!("field `{}` without a label", field.name())))
}

fn kind(field: &FieldDescriptorProto) -> Result<Type> {
    field
        .r#type
        .and_then(|t| Type::try_from(t).ok())
        .ok_or_else(|| Unprintable(format!("field `{}` without a resolved type", field.name())))
}

/// The bracketed options of a field: `default`, `json_name` unless it is the default one, then
/// its `FieldOptions`.
fn field_options(field: &FieldDescriptorProto) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    if let Some(value) = &field.default_value {
        let text = match kind(field)? {
            Type::String => quote(value),
            // Already escaped as C does, which is how `protoc` and `protox` store it.
            Type::Bytes => format!("\"{value}\""),
            // Numbers, `true`/`false`, `inf`/`nan`, enum value names.
            _ => value.clone(),
        };
        out.push(("default".to_string(), text));
    }
    if let Some(json) = &field.json_name
        && *json != json_name(field.name())
    {
        out.push(("json_name".to_string(), quote(json)));
    }
    if let Some(options) = &field.options {
        out.extend(option_values(options)?);
    }
    Ok(out)
}

fn brackets(options: Vec<(String, String)>) -> String {
    if options.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = options
        .into_iter()
        .map(|(name, value)| format!("{name} = {value}"))
        .collect();
    format!(" [{}]", parts.join(", "))
}

/// The options set in an options message, by name, with their values as `.proto` writes them.
/// Refused: anything `prost-reflect`'s `descriptor.proto` does not know, repeated or message
/// values (uninterpreted options, which a compiled descriptor never holds).
fn option_values<M: ReflectMessage>(options: &M) -> Result<Vec<(String, String)>> {
    let dynamic = options.transcode_to_dynamic();
    if dynamic.unknown_fields().next().is_some() {
        return refuse(format!(
            "unknown options in `{}`",
            dynamic.descriptor().full_name()
        ));
    }
    dynamic
        .fields()
        .map(|(field, value)| Ok((field.name().to_string(), option_value(&field, value)?)))
        .collect()
}

fn option_value(field: &FieldDescriptor, value: &Value) -> Result<String> {
    Ok(match value {
        Value::Bool(b) => b.to_string(),
        Value::I32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::F32(x) => float(f64::from(*x)),
        Value::F64(x) => float(*x),
        Value::String(s) => quote(s),
        Value::Bytes(b) => format!("\"{}\"", escape_bytes(b)),
        Value::EnumNumber(n) => match field.kind().as_enum().and_then(|e| e.get_value(*n)) {
            Some(v) => v.name().to_string(),
            None => return refuse(format!("option `{}`: unknown value {n}", field.name())),
        },
        Value::Message(_) | Value::List(_) | Value::Map(_) => {
            return refuse(format!("option `{}` is not a single value", field.name()));
        }
    })
}

fn float(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{x:?}")
    }
}

/// The JSON name `protoc` gives a field by default: lowerCamelCase of its name.
fn json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A string literal whose value is `s`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:03o}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Bytes as the body of a string literal, escaped as C does.
fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\'"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:03o}")),
        }
    }
    out
}

/// `start` or `start to last`.
fn span(start: i32, last: i32) -> String {
    if start == last {
        start.to_string()
    } else {
        format!("{start} to {last}")
    }
}

/// A name, when it is an identifier (anything else would not print as one).
fn ident(name: &str) -> Result<&str> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name)
    } else {
        refuse(format!("`{name}` is not an identifier"))
    }
}

/// A package name: identifiers joined by dots.
fn dotted(name: &str) -> Result<()> {
    name.split('.').try_for_each(|part| ident(part).map(drop))
}

/// A fully qualified type name with its leading dot, as descriptors hold them.
fn type_name(name: &str) -> Result<String> {
    match name.strip_prefix('.') {
        Some(rest) => dotted(rest).map(|()| name.to_string()),
        None => refuse(format!("type `{name}` is not fully qualified")),
    }
}

/// `file` without what [`round_trips`] does not compare.
fn normalized(mut file: FileDescriptorProto) -> FileDescriptorProto {
    fn unset<T: Default + PartialEq>(options: &mut Option<T>) {
        if options.as_ref().is_some_and(|o| *o == T::default()) {
            *options = None;
        }
    }
    fn field(f: &mut FieldDescriptorProto) {
        if f.json_name.is_none() {
            f.json_name = Some(json_name(f.name()));
        }
        unset(&mut f.options);
    }
    fn enumeration(e: &mut EnumDescriptorProto) {
        unset(&mut e.options);
        e.value.iter_mut().for_each(|v| unset(&mut v.options));
    }
    fn message(m: &mut DescriptorProto) {
        unset(&mut m.options);
        m.field.iter_mut().for_each(field);
        m.extension.iter_mut().for_each(field);
        m.nested_type.iter_mut().for_each(message);
        m.enum_type.iter_mut().for_each(enumeration);
        m.extension_range
            .iter_mut()
            .for_each(|r| unset(&mut r.options));
        m.oneof_decl.iter_mut().for_each(|o| unset(&mut o.options));
    }
    file.source_code_info = None;
    if matches!(file.syntax.as_deref(), Some("" | "proto2")) {
        file.syntax = None;
    }
    unset(&mut file.options);
    file.message_type.iter_mut().for_each(message);
    file.enum_type.iter_mut().for_each(enumeration);
    file.extension.iter_mut().for_each(field);
    for service in &mut file.service {
        unset(&mut service.options);
        service
            .method
            .iter_mut()
            .for_each(|m| unset(&mut m.options));
    }
    file
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use protox::prost::Message as _;

    use super::*;

    const COMMON: &str = "syntax = \"proto3\";\npackage acme.common;\n\
                          message Money { string currency = 1; int64 units = 2; }\n";

    const PROTO3: &str = r#"
syntax = "proto3";
package acme.shop;
import "google/protobuf/timestamp.proto";
import public "acme/common.proto";
import "google/protobuf/descriptor.proto";
option java_package = "com.acme.shop";
option java_multiple_files = true;
option go_package = "acme/shop;shop";
option optimize_for = LITE_RUNTIME;
option csharp_namespace = "Acme.Shop";
option deprecated = true;

message Order {
  option deprecated = true;
  message Line { string sku = 1; uint32 qty = 2; }
  string id = 1;
  optional string note = 2;
  repeated int32 counts = 3 [packed = false];
  map<string, Line> lines = 4;
  oneof payment {
    string card = 5;
    Cash cash = 6 [deprecated = true];
  }
  google.protobuf.Timestamp at = 7 [json_name = "when"];
  Status status = 9;
  message Cash { double amount = 1; }
  map<int64, Status> by_id = 13;
  acme.common.Money total = 14;
  bytes blob = 15;
  sint64 s = 16; fixed32 f = 17; sfixed64 sf = 18; float fl = 19; bool b = 20;
  fixed64 f64 = 21; sfixed32 sf32 = 22; sint32 s32 = 23; uint64 u64 = 24;
  optional Line maybe_line = 25;
  enum Status {
    option allow_alias = true;
    UNKNOWN = 0; OPEN = 1; STARTED = 1; DONE = 2 [deprecated = true];
    reserved 5, 7 to 9; reserved "GONE";
  }
  reserved 8, 10 to 12;
  reserved "old", "older";
  map<string, acme.common.Money> prices = 26;
}
enum Top { TOP_UNKNOWN = 0; TOP_MINUS = -1; }
service Shop {
  option deprecated = true;
  rpc Get (Order) returns (Order);
  rpc Watch (Order) returns (stream Order) { option deprecated = true; }
  rpc Upload (stream Order) returns (Order) { option idempotency_level = IDEMPOTENT; }
  rpc Chat (stream Order) returns (stream Order);
}
extend google.protobuf.MessageOptions { string label = 50001; repeated int32 tags = 50002; }
extend google.protobuf.FieldOptions { Top top = 50003; }
"#;

    const PROTO2: &str = r#"
syntax = "proto2";
package legacy;
import weak "legacy/weak.proto";
option java_outer_classname = "LegacyProto";
option optimize_for = CODE_SIZE;
option cc_enable_arenas = true;
option java_generic_services = true;

message Thing {
  required string id = 1;
  optional int32 count = 2 [default = -7];
  optional string name = 3 [default = "a \"quoted\"\n\ttab \\ é \001 '"];
  optional bytes raw = 4 [default = "\000\001\377abc\"'"];
  optional double ratio = 5 [default = inf];
  optional float small = 6 [default = -1.5e-3];
  optional Kind kind = 7 [default = B];
  optional bool on = 8 [default = true];
  repeated int64 xs = 9 [packed = true];
  optional group Result = 10 { optional string url = 1; repeated string tags = 2; }
  oneof choice { string a = 11; int32 b = 12; group Picked = 17 { optional int32 n = 1; } }
  extensions 100 to 199, 1000 to max;
  reserved 20 to 29;
  optional uint64 big = 13 [default = 18446744073709551615];
  optional string camel_case_name = 14 [json_name = "camel_case_name"];
  enum Kind { A = 1; B = 2; }
  map<string, Thing> children = 15;
  optional int32 old = 16 [deprecated = true, ctype = CORD, jstype = JS_STRING];
  optional double nothing = 18 [default = nan];
  extend Thing { optional int32 nested_ext = 150; }
}
extend Thing { optional string tag = 100; repeated int32 more = 101; }
message Set { option message_set_wire_format = true; extensions 4 to max; }
message Empty {}
"#;

    const WEAK: &str = "syntax = \"proto2\";\npackage legacy;\nmessage Weak {}\n";

    fn imports() -> Vec<(&'static str, &'static str)> {
        vec![("acme/common.proto", COMMON), ("legacy/weak.proto", WEAK)]
    }

    /// The descriptor of `text` compiled as `name`, as a serializer would send it: no source
    /// info and, with `bare`, no `json_name`s.
    fn compiled(name: &str, text: &str, bare: bool) -> FileDescriptorProto {
        let pool = proto_files::compile(name, text, imports()).unwrap();
        let mut file = pool
            .get_file_by_name(name)
            .unwrap()
            .file_descriptor_proto()
            .clone();
        file.source_code_info = None;
        if bare {
            fn strip(m: &mut DescriptorProto) {
                m.field.iter_mut().for_each(bare_field);
                m.extension.iter_mut().for_each(bare_field);
                m.nested_type.iter_mut().for_each(strip);
            }
            file.message_type.iter_mut().for_each(strip);
            file.extension.iter_mut().for_each(bare_field);
        }
        file
    }

    /// Leaves out a default `json_name`, as `protoc` does.
    fn bare_field(f: &mut FieldDescriptorProto) {
        if f.json_name.as_deref() == Some(json_name(f.name()).as_str()) {
            f.json_name = None;
        }
    }

    fn base64(file: &FileDescriptorProto) -> String {
        base64::engine::general_purpose::STANDARD.encode(file.encode_to_vec())
    }

    fn printed(file: &FileDescriptorProto) -> String {
        let text = as_proto_text(&base64(file), imports());
        text.unwrap_or_else(|| panic!("no round trip for {}: {}", file.name(), why(file)))
    }

    /// What differs after a round trip of `file`, line by line of their debug forms.
    fn why(file: &FileDescriptorProto) -> String {
        let text = match print(file, TypeNames::Shortest) {
            Ok(text) => text,
            Err(e) => return e.to_string(),
        };
        let back = match proto_files::compile(file.name(), &text, imports()) {
            Ok(pool) => pool.get_file_by_name(file.name()).unwrap(),
            Err(e) => return format!("{e}\n{text}"),
        };
        let want = format!("{:#?}", normalized(file.clone()));
        let got = format!("{:#?}", normalized(back.file_descriptor_proto().clone()));
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .enumerate()
            .filter(|(_, (w, g))| w != g)
            .take(5)
            .map(|(i, (w, g))| format!("line {i}: want {w} got {g}"))
            .collect();
        format!("{}\n{text}", diff.join("\n"))
    }

    #[test]
    fn proto3_features_round_trip() {
        for bare in [false, true] {
            let file = compiled("acme/shop.proto", PROTO3, bare);
            let text = printed(&file);
            for line in [
                "syntax = \"proto3\";",
                "import public \"acme/common.proto\";",
                "option java_package = \"com.acme.shop\";",
                "option optimize_for = LITE_RUNTIME;",
                "  optional string note = 2;",
                "  map<string, Line> lines = 4;",
                "  map<string, common.Money> prices = 26;",
                "  oneof payment {",
                "    Cash cash = 6 [deprecated = true];",
                "  google.protobuf.Timestamp at = 7 [json_name = \"when\"];",
                "  rpc Watch (Order) returns (stream Order) {",
                "extend google.protobuf.MessageOptions {",
            ] {
                assert!(text.contains(line), "{line:?} missing in\n{text}");
            }
        }
    }

    #[test]
    fn proto2_features_round_trip() {
        for bare in [false, true] {
            let file = compiled("legacy/thing.proto", PROTO2, bare);
            let text = printed(&file);
            for line in [
                "syntax = \"proto2\";",
                "import weak \"legacy/weak.proto\";",
                "  required string id = 1;",
                "  optional group Result = 10 {",
                "    group Picked = 17 {",
                "  extensions 1000 to max;",
                "  optional string camel_case_name = 14 [json_name = \"camel_case_name\"];",
                "  optional Kind kind = 7 [default = B];",
                "  option message_set_wire_format = true;",
            ] {
                assert!(text.contains(line), "{line:?} missing in\n{text}");
            }
        }
    }

    #[test]
    fn both_ways_of_naming_types_round_trip() {
        for (name, text) in [("acme/shop.proto", PROTO3), ("legacy/thing.proto", PROTO2)] {
            let file = compiled(name, text, true);
            for names in [TypeNames::Shortest, TypeNames::FullyQualified] {
                let printed = print(&file, names).unwrap();
                assert!(round_trips(&file, &printed, imports()), "{printed}");
            }
        }
    }

    #[test]
    fn a_shadowed_short_name_falls_back_to_the_full_one() {
        // `Money` in `a.b` would be `a.b.Money`, from an import the file does not name.
        let outer = "syntax = \"proto3\"; package a; message Money {}";
        let inner = "syntax = \"proto3\"; package a.b; message Money {}";
        let main = "syntax = \"proto3\"; package a.b; import \"a/money.proto\";\n\
                    import \"a/b/money.proto\"; message X { .a.Money m = 1; }";
        let imports = [("a/money.proto", outer), ("a/b/money.proto", inner)];
        let pool = proto_files::compile("x.proto", main, imports).unwrap();
        let file = pool.get_file_by_name("x.proto").unwrap();
        let short = print(file.file_descriptor_proto(), TypeNames::Shortest).unwrap();
        assert!(short.contains("  Money m = 1;"), "{short}");
        let text = as_proto_text(&base64(file.file_descriptor_proto()), imports).unwrap();
        assert!(text.contains("  .a.Money m = 1;"), "{text}");
    }

    /// The files of `cli/tests/it/protobuf_source_payloads.py`, built field by field as it
    /// builds them for Confluent's Python `ProtobufSerializer`.
    #[test]
    fn descriptors_built_by_hand_round_trip() {
        use protox::prost_reflect::prost_types::EnumValueDescriptorProto;
        let field =
            |name: &str, number: i32, ty: Type, type_name: Option<&str>| FieldDescriptorProto {
                name: Some(name.into()),
                number: Some(number),
                label: Some(Label::Optional.into()),
                r#type: Some(ty.into()),
                type_name: type_name.map(Into::into),
                ..Default::default()
            };
        let value = |name: &str, number: i32| EnumValueDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            options: None,
        };
        let customer = FileDescriptorProto {
            name: Some("acme/customer.proto".into()),
            package: Some("acme".into()),
            syntax: Some("proto3".into()),
            message_type: vec![DescriptorProto {
                name: Some("Customer".into()),
                field: vec![
                    field("id", 1, Type::String, None),
                    field("tier", 2, Type::Enum, Some(".acme.Customer.Tier")),
                ],
                enum_type: vec![EnumDescriptorProto {
                    name: Some("Tier".into()),
                    value: vec![value("GOLD", 0), value("SILVER", 1)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let order = FileDescriptorProto {
            name: Some("acme/order.proto".into()),
            package: Some("acme".into()),
            syntax: Some("proto3".into()),
            dependency: vec!["acme/customer.proto".into()],
            message_type: vec![DescriptorProto {
                name: Some("Order".into()),
                field: vec![
                    field("id", 1, Type::String, None),
                    field("amount", 2, Type::Double, None),
                    field("quantity", 3, Type::Int32, None),
                    field("customer", 5, Type::Message, Some(".acme.Customer")),
                    field("currency", 6, Type::String, None),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let customer_text = as_proto_text(&base64(&customer), []).unwrap();
        assert!(
            customer_text.contains("  Tier tier = 2;"),
            "{customer_text}"
        );
        let imports = [("acme/customer.proto", customer_text.as_str())];
        let order_text = as_proto_text(&base64(&order), imports).unwrap();
        assert_eq!(
            order_text,
            "syntax = \"proto3\";\npackage acme;\nimport \"acme/customer.proto\";\n\
             message Order {\n  string id = 1;\n  double amount = 2;\n  int32 quantity = 3;\n  \
             Customer customer = 5;\n  string currency = 6;\n}\n"
        );
    }

    #[test]
    fn a_file_without_syntax_or_package_round_trips() {
        let file = compiled("bare.proto", "message A { optional int32 x = 1; }", true);
        assert_eq!(file.syntax, None);
        let text = printed(&file);
        assert!(
            text.starts_with("syntax = \"proto2\";\nmessage A {"),
            "{text}"
        );
        // `proto2` said explicitly is the same file.
        let mut explicit = file.clone();
        explicit.syntax = Some("proto2".into());
        assert_eq!(printed(&explicit), text);
    }

    #[test]
    fn google_well_known_types_round_trip() {
        let pool = protox::prost_reflect::DescriptorPool::global();
        let mut names = Vec::new();
        for file in pool.files() {
            let proto = file.file_descriptor_proto();
            let text = as_proto_text(&base64(proto), []);
            assert!(text.is_some(), "{}: {}", file.name(), why(proto));
            names.push(file.name().to_string());
        }
        for wanted in [
            "google/protobuf/descriptor.proto",
            "google/protobuf/any.proto",
            "google/protobuf/timestamp.proto",
            "google/protobuf/struct.proto",
            "google/protobuf/wrappers.proto",
        ] {
            assert!(
                names.iter().any(|n| n == wanted),
                "{wanted} not in {names:?}"
            );
        }
    }

    #[test]
    fn imports_resolve_as_text_or_as_descriptors() {
        let order = compiled("acme/shop.proto", PROTO3, true);
        let common = base64(&compiled("acme/common.proto", COMMON, true));
        let imports = [("acme/common.proto", common.as_str())];
        assert!(as_proto_text(&base64(&order), imports).is_some());
        // Without the imported file it does not compile, so it is not printed.
        assert_eq!(as_proto_text(&base64(&order), []), None);
    }

    #[test]
    fn what_cannot_be_printed_faithfully_stays_as_it_is() {
        // Not base64, or base64 of something else.
        assert_eq!(as_proto_text("syntax = \"proto3\";", []), None);
        assert_eq!(as_proto_text("AAAA////", []), None);

        // Editions.
        let mut file = compiled("bare.proto", "syntax = \"proto3\"; message A {}", true);
        file.syntax = Some("editions".into());
        assert!(print(&file, TypeNames::FullyQualified).is_err());
        assert_eq!(as_proto_text(&base64(&file), []), None);

        // A field `prost` does not know (a custom option, say) would be dropped: refused.
        let file = compiled("bare.proto", "syntax = \"proto3\"; message A {}", true);
        let mut bytes = file.encode_to_vec();
        bytes.extend([0x98, 0x06, 0x01]); // field 99, varint 1
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(as_proto_text(&text, []), None);
        // But fields in another order than `prost` writes them are the same descriptor.
        let mut bytes = FileDescriptorProto {
            syntax: file.syntax.clone(),
            ..Default::default()
        }
        .encode_to_vec();
        bytes.extend(
            FileDescriptorProto {
                message_type: file.message_type.clone(),
                name: file.name.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        assert_ne!(bytes, file.encode_to_vec());
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert!(as_proto_text(&text, []).is_some());

        // A type that does not resolve prints, but does not compile back.
        let mut file = compiled(
            "bare.proto",
            "syntax = \"proto3\"; message A { A a = 1; }",
            true,
        );
        file.message_type[0].field[0].type_name = Some(".nowhere.B".into());
        assert!(print(&file, TypeNames::FullyQualified).is_ok());
        assert_eq!(as_proto_text(&base64(&file), []), None);

        // Names that are not identifiers are refused.
        let mut file = compiled("bare.proto", "syntax = \"proto3\"; message A {}", true);
        file.message_type[0].name = Some("A { }".into());
        assert!(print(&file, TypeNames::FullyQualified).is_err());
    }

    #[test]
    fn string_literals_escape() {
        assert_eq!(quote("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\001é\"");
        assert_eq!(escape_bytes(b"\0'\xff"), "\\000\\'\\377");
        assert_eq!(json_name("camel_case_name"), "camelCaseName");
    }
}
