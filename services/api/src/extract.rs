//! axum's extractors with their rejections turned into problems: malformed JSON is a 400, wrong
//! types or missing fields a 422, a body over the limit a 413, a body that is not JSON a 415, and
//! a bad path or query parameter a 400, each with a `detail` that names what was wrong. Every
//! request body of the API is a JSON object: any other JSON value is a 422 (serde alone would fill
//! a struct from an array's elements, in order).

use crate::error::ApiError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::{Deserialize, DeserializeOwned, Deserializer, MapAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// axum's `Json`, rejections as problems.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<Object<T>>::from_request(req, state).await {
            Ok(axum::Json(Object(value))) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// A `T` read from a JSON object only.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        deserializer.deserialize_map(ObjectVisitor(PhantomData)).map(Object)
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let text = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => ApiError::Invalid(text),
        JsonRejection::JsonSyntaxError(_) => ApiError::BadRequest(text),
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "the body must be JSON with `Content-Type: application/json`".into(),
        ),
        JsonRejection::BytesRejection(_) if rejection_status(&text) => {
            ApiError::TooLarge("the request body is larger than the limit".into())
        }
        _ => ApiError::BadRequest(text),
    }
}

/// axum reports a body over the limit as a bytes rejection whose text says so.
fn rejection_status(text: &str) -> bool {
    text.contains("length limit") || text.contains("too large")
}

/// axum's `Query`, rejections as problems.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|r: QueryRejection| ApiError::BadRequest(r.body_text()))
    }
}

/// axum's `Path`, rejections as problems.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state).await.map(|p| Path(p.0)).map_err(
            |r: PathRejection| match r.status() {
                StatusCode::INTERNAL_SERVER_ERROR => {
                    ApiError::Internal(anyhow::anyhow!("path extraction: {}", r.body_text()))
                }
                _ => ApiError::BadRequest(r.body_text()),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Named {
        name: String,
        #[serde(default)]
        size: u32,
    }

    #[test]
    fn only_an_object_is_read_into_a_struct() {
        let read = |text: &str| serde_json::from_str::<Object<Named>>(text).map(|o| o.0);
        assert_eq!(read(r#"{"name": "a"}"#).ok(), Some(Named { name: "a".into(), size: 0 }));
        for other in [r#"["a", 1]"#, r#""a""#, "1", "null", "true"] {
            let err = read(other).unwrap_err().to_string();
            assert!(err.contains("expected a JSON object"), "{other}: {err}");
        }
        let err = read(r#"{"name": "a", "extra": 1}"#).unwrap_err().to_string();
        assert!(err.contains("unknown field `extra`"), "{err}");
        let err = read(r#"{"name": 5}"#).unwrap_err().to_string();
        assert!(err.contains("invalid type"), "{err}");
    }
}
