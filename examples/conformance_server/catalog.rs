//! The fixed resources, resource template, prompts and completions the conformance suite reads.

use rmcp::{
    ErrorData,
    model::{
        ArgumentInfo, CompleteResult, CompletionInfo, ContentBlock, GetPromptResult, JsonObject,
        Prompt, PromptArgument, PromptMessage, ReadResourceResult, Reference, Resource,
        ResourceContents, ResourceTemplate, Role,
    },
};

/// A 1x1 red PNG.
pub const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A WAV header with no samples (mono, 44.1 kHz, 16 bit).
pub const WAV: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEARKwAAIhYAQACABAAZGF0YQAAAAA=";

const TEMPLATE: &str = "test://template/{id}/data";

pub fn resources() -> Vec<Resource> {
    let r = |uri: &str, name: &str, description: &str, mime: &str| {
        Resource::new(uri, name)
            .with_description(description)
            .with_mime_type(mime)
    };
    vec![
        r(
            "test://static-text",
            "static-text",
            "A static text resource",
            "text/plain",
        ),
        r(
            "test://static-binary",
            "static-binary",
            "A static binary resource (1x1 PNG)",
            "image/png",
        ),
        r(
            "test://watched-resource",
            "watched-resource",
            "A resource clients may subscribe to",
            "text/plain",
        ),
    ]
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(TEMPLATE, "template-data")
            .with_description("Data for an id, substituted into the URI")
            .with_mime_type("application/json"),
    ]
}

/// The `{id}` of a `test://template/{id}/data` URI: one non-empty path segment.
fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix("test://template/")?
        .strip_suffix("/data")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

pub fn read(uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let text = |text: String, mime: &str| ResourceContents::text(text, uri).with_mime_type(mime);
    let contents = match uri {
        "test://static-text" => text(
            "This is the content of the static text resource.".into(),
            "text/plain",
        ),
        "test://static-binary" => ResourceContents::blob(PNG, uri).with_mime_type("image/png"),
        "test://watched-resource" => text("Watched resource content.".into(), "text/plain"),
        _ => match template_id(uri) {
            Some(id) => {
                let data = serde_json::json!({
                    "id": id, "templateTest": true, "data": format!("Data for ID: {id}"),
                });
                text(data.to_string(), "application/json")
            }
            None => {
                let message = format!("no resource {uri}");
                return Err(ErrorData::resource_not_found(message, None));
            }
        },
    };
    Ok(ReadResourceResult::new(vec![contents]))
}

pub fn prompts() -> Vec<Prompt> {
    let arg = |name: &str, description: &str| {
        PromptArgument::new(name)
            .with_description(description)
            .with_required(true)
    };
    vec![
        Prompt::new(
            "test_simple_prompt",
            Some("A prompt without arguments"),
            None,
        ),
        Prompt::new(
            "test_prompt_with_arguments",
            Some("A prompt with two required arguments"),
            Some(vec![
                arg("arg1", "First test argument"),
                arg("arg2", "Second test argument"),
            ]),
        ),
        Prompt::new(
            "test_prompt_with_embedded_resource",
            Some("A prompt embedding a resource"),
            Some(vec![arg("resourceUri", "URI of the resource to embed")]),
        ),
        Prompt::new(
            "test_prompt_with_image",
            Some("A prompt with an image"),
            None,
        ),
    ]
}

/// A required string argument of a prompt.
fn argument<'a>(args: Option<&'a JsonObject>, name: &str) -> Result<&'a str, ErrorData> {
    let value = args.and_then(|a| a.get(name)).and_then(|v| v.as_str());
    value.ok_or_else(|| ErrorData::invalid_params(format!("missing argument {name:?}"), None))
}

pub fn prompt(name: &str, args: Option<&JsonObject>) -> Result<GetPromptResult, ErrorData> {
    let user = |content: ContentBlock| PromptMessage::new(Role::User, content);
    let messages = match name {
        "test_simple_prompt" => vec![user(ContentBlock::text(
            "This is a simple prompt for testing.",
        ))],
        "test_prompt_with_arguments" => {
            let (arg1, arg2) = (argument(args, "arg1")?, argument(args, "arg2")?);
            vec![user(ContentBlock::text(format!(
                "Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
            )))]
        }
        "test_prompt_with_embedded_resource" => {
            let uri = argument(args, "resourceUri")?;
            let embedded = ResourceContents::text("Embedded resource content for testing.", uri)
                .with_mime_type("text/plain");
            vec![
                user(ContentBlock::resource(embedded)),
                user(ContentBlock::text(
                    "Please process the embedded resource above.",
                )),
            ]
        }
        "test_prompt_with_image" => vec![
            user(ContentBlock::image(PNG, "image/png")),
            user(ContentBlock::text("Please analyze the image above.")),
        ],
        _ => return Err(ErrorData::invalid_params(format!("no prompt {name}"), None)),
    };
    Ok(GetPromptResult::new(messages))
}

/// Completions for the prompt arguments and the template's `{id}`: fixed candidates that start
/// with what the client typed.
pub fn complete(
    reference: &Reference,
    argument: &ArgumentInfo,
) -> Result<CompleteResult, ErrorData> {
    let candidates: &[&str] = match (reference, argument.name.as_str()) {
        (Reference::Prompt(p), "arg1") if p.name == "test_prompt_with_arguments" => {
            &["hello", "help", "testValue1"]
        }
        (Reference::Prompt(p), "arg2") if p.name == "test_prompt_with_arguments" => {
            &["world", "word", "testValue2"]
        }
        (Reference::Resource(r), "id") if r.uri == TEMPLATE => &["1", "2", "123"],
        _ => &[],
    };
    let values = candidates
        .iter()
        .filter(|c| c.starts_with(argument.value.as_str()))
        .map(|c| c.to_string())
        .collect();
    let info = CompletionInfo::new(values).map_err(|e| ErrorData::internal_error(e, None))?;
    Ok(CompleteResult::new(info))
}
