//! Reads template.yaml the way CloudFormation would for the parts the local stack needs: parameters
//! (defaults and overrides), pseudo parameters, mappings, conditions, the `Rules` assertions (a
//! parameter set a deployment would refuse is refused here too), and the intrinsic functions the
//! template uses (`Ref`, `Fn::Sub`, `Fn::GetAtt`, `Fn::If`, `Fn::Equals`, `Fn::Not`, `Fn::And`,
//! `Fn::Or`, `Fn::Join`, `Fn::Select`, `Fn::FindInMap`). Names and wiring come from here; nothing is
//! typed twice.

use serde_json::{Map, Value as Json};
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the template: {0}")]
    Read(String),
    #[error("template: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> TemplateError {
    TemplateError::Invalid(msg.into())
}

/// The template with the values a deployment would give it.
pub struct Template {
    root: Yaml,
    pub stack_name: String,
    pub region: String,
    pub account: String,
    parameters: HashMap<String, Json>,
    conditions: HashMap<String, bool>,
    /// What `Ref` of a resource gives (table name, queue URL, bucket name ...), filled in as resources exist.
    refs: HashMap<String, String>,
    /// What `GetAtt <resource>.Arn` gives.
    arns: HashMap<String, String>,
    /// Other `GetAtt` attributes, e.g. a queue's `QueueName`.
    attributes: HashMap<(String, String), String>,
}

/// One resource's logical id, type and raw properties.
pub struct Resource<'a> {
    pub logical_id: String,
    pub kind: String,
    pub properties: &'a Yaml,
    pub metadata: &'a Yaml,
}

impl Template {
    pub fn load(
        path: &Path,
        stack_name: &str,
        region: &str,
        account: &str,
        overrides: &HashMap<String, String>,
    ) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TemplateError::Read(format!("{}: {e}", path.display())))?;
        Self::parse(&text, stack_name, region, account, overrides)
    }

    pub fn parse(
        text: &str,
        stack_name: &str,
        region: &str,
        account: &str,
        overrides: &HashMap<String, String>,
    ) -> Result<Self, TemplateError> {
        let root: Yaml =
            serde_yaml::from_str(text).map_err(|e| TemplateError::Read(e.to_string()))?;
        let mut template = Self {
            root,
            stack_name: stack_name.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            parameters: HashMap::new(),
            conditions: HashMap::new(),
            refs: HashMap::new(),
            arns: HashMap::new(),
            attributes: HashMap::new(),
        };
        let params: Vec<(String, Yaml)> = template
            .section("Parameters")
            .map(|(k, v)| (k, v.clone()))
            .collect();
        for (name, spec) in params {
            let kind = spec.get("Type").and_then(Yaml::as_str).unwrap_or("String");
            let raw = match overrides.get(&name) {
                Some(v) => v.clone(),
                None => match spec.get("Default") {
                    Some(Yaml::String(s)) => s.clone(),
                    Some(Yaml::Number(n)) => n.to_string(),
                    Some(Yaml::Bool(b)) => b.to_string(),
                    _ => {
                        return Err(invalid(format!(
                            "parameter {name} has no default and no value"
                        )))
                    }
                },
            };
            let value = if kind == "CommaDelimitedList" {
                Json::Array(
                    raw.split(',')
                        .map(|s| Json::String(s.trim().to_owned()))
                        .collect(),
                )
            } else {
                Json::String(raw)
            };
            template.parameters.insert(name, value);
        }
        let conditions: Vec<(String, Yaml)> = template
            .section("Conditions")
            .map(|(k, v)| (k, v.clone()))
            .collect();
        for (name, expr) in conditions {
            let value = template.condition(&expr)?;
            template.conditions.insert(name, value);
        }
        template.check_rules()?;
        Ok(template)
    }

    /// CloudFormation's `Rules`: each assertion whose rule applies must hold for the parameters given,
    /// or the deployment is refused before anything is created.
    fn check_rules(&self) -> Result<(), TemplateError> {
        for (name, rule) in self.section("Rules") {
            if let Some(applies) = rule.get("RuleCondition") {
                if !self.condition(applies)? {
                    continue;
                }
            }
            let assertions = rule
                .get("Assertions")
                .and_then(Yaml::as_sequence)
                .ok_or_else(|| invalid(format!("rule {name} has no Assertions")))?;
            for assertion in assertions {
                let holds = self.condition(assertion.get("Assert").ok_or_else(|| {
                    invalid(format!("rule {name}: an assertion without Assert"))
                })?)?;
                if !holds {
                    let why = assertion
                        .get("AssertDescription")
                        .and_then(Yaml::as_str)
                        .unwrap_or("assertion failed");
                    return Err(invalid(format!("rule {name}: {why}")));
                }
            }
        }
        Ok(())
    }

    fn section(&self, name: &str) -> impl Iterator<Item = (String, &Yaml)> {
        self.root
            .get(name)
            .and_then(Yaml::as_mapping)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter_map(|(k, v)| k.as_str().map(|k| (k.to_owned(), v)))
    }

    pub fn resources(&self) -> Vec<Resource<'_>> {
        self.section("Resources")
            .map(|(logical_id, body)| Resource {
                logical_id,
                kind: body
                    .get("Type")
                    .and_then(Yaml::as_str)
                    .unwrap_or("")
                    .to_owned(),
                properties: body.get("Properties").unwrap_or(&Yaml::Null),
                metadata: body.get("Metadata").unwrap_or(&Yaml::Null),
            })
            .collect()
    }

    pub fn resources_of(&self, kind: &str) -> Vec<Resource<'_>> {
        self.resources()
            .into_iter()
            .filter(|r| r.kind == kind)
            .collect()
    }

    /// `Globals.Function`, merged under each function's own properties by [`Self::function_environment`].
    fn globals_function(&self) -> &Yaml {
        self.root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .unwrap_or(&Yaml::Null)
    }

    pub fn parameter(&self, name: &str) -> Option<&Json> {
        self.parameters.get(name)
    }

    pub fn set_ref(&mut self, logical_id: &str, value: impl Into<String>) {
        self.refs.insert(logical_id.to_owned(), value.into());
    }

    pub fn set_arn(&mut self, logical_id: &str, value: impl Into<String>) {
        self.arns.insert(logical_id.to_owned(), value.into());
    }

    pub fn set_attribute(&mut self, logical_id: &str, attribute: &str, value: impl Into<String>) {
        self.attributes
            .insert((logical_id.to_owned(), attribute.to_owned()), value.into());
    }

    /// A function's environment: `Globals.Function.Environment` overlaid with its own, evaluated.
    pub fn function_environment(
        &self,
        function: &Resource<'_>,
    ) -> Result<BTreeMap<String, String>, TemplateError> {
        let mut env = BTreeMap::new();
        for source in [self.globals_function(), function.properties] {
            let vars = source
                .get("Environment")
                .and_then(|e| e.get("Variables"))
                .and_then(Yaml::as_mapping);
            for (k, v) in vars.into_iter().flat_map(|m| m.iter()) {
                let name = k
                    .as_str()
                    .ok_or_else(|| invalid("environment variable name"))?;
                let value = match self.eval(v)? {
                    Json::String(s) => s,
                    Json::Null => continue,
                    other => other.to_string(),
                };
                env.insert(name.to_owned(), value);
            }
        }
        Ok(env)
    }

    /// A function property, falling back to `Globals.Function`.
    pub fn function_property(&self, function: &Resource<'_>, name: &str) -> Option<Json> {
        function
            .properties
            .get(name)
            .or_else(|| self.globals_function().get(name))
            .and_then(|v| self.eval(v).ok())
    }

    fn condition(&self, expr: &Yaml) -> Result<bool, TemplateError> {
        match self.eval(expr)? {
            Json::Bool(b) => Ok(b),
            other => Err(invalid(format!("condition is not a boolean: {other}"))),
        }
    }

    fn pseudo(&self, name: &str) -> Option<String> {
        Some(match name {
            "AWS::StackName" => self.stack_name.clone(),
            "AWS::Region" => self.region.clone(),
            "AWS::AccountId" => self.account.clone(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            "AWS::StackId" => format!(
                "arn:aws:cloudformation:{}:{}:stack/{}/local",
                self.region, self.account, self.stack_name
            ),
            _ => return None,
        })
    }

    fn reference(&self, name: &str) -> Result<Json, TemplateError> {
        if name == "AWS::NoValue" {
            return Ok(Json::Null);
        }
        if let Some(v) = self.pseudo(name) {
            return Ok(Json::String(v));
        }
        if let Some(v) = self.parameters.get(name) {
            return Ok(v.clone());
        }
        self.refs
            .get(name)
            .map(|v| Json::String(v.clone()))
            .ok_or_else(|| {
                invalid(format!(
                    "Ref {name}: unknown, or the resource does not exist yet"
                ))
            })
    }

    fn get_att(&self, resource: &str, attribute: &str) -> Result<Json, TemplateError> {
        if let Some(v) = self
            .attributes
            .get(&(resource.to_owned(), attribute.to_owned()))
        {
            return Ok(Json::String(v.clone()));
        }
        match attribute {
            "Arn" => self
                .arns
                .get(resource)
                .map(|v| Json::String(v.clone()))
                .ok_or_else(|| invalid(format!("GetAtt {resource}.Arn: unknown resource"))),
            "TableName" | "BucketName" => self.reference(resource),
            // An origin access control's Id is what its Ref gives (as in CloudFormation).
            "Id" => self.reference(resource),
            // A bucket's regional endpoint, as CloudFront's origin names it.
            "RegionalDomainName" => match self.reference(resource)? {
                Json::String(bucket) => Ok(Json::String(format!(
                    "{bucket}.s3.{}.amazonaws.com",
                    self.region
                ))),
                _ => Err(invalid(format!("GetAtt {resource}.RegionalDomainName"))),
            },
            _ => Err(invalid(format!(
                "GetAtt {resource}.{attribute} is not supported locally"
            ))),
        }
    }

    fn sub(&self, text: &str, vars: &Map<String, Json>) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| invalid(format!("unclosed ${{ in Sub {text:?}")))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else {
                let value = if let Some(v) = vars.get(name) {
                    v.clone()
                } else if let Some((res, attr)) = name.split_once('.') {
                    self.get_att(res, attr)?
                } else {
                    self.reference(name)?
                };
                match value {
                    Json::String(s) => out.push_str(&s),
                    other => out.push_str(&other.to_string()),
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Evaluates a template value to plain JSON; `AWS::NoValue` becomes `null` and is dropped from
    /// lists and maps.
    pub fn eval(&self, value: &Yaml) -> Result<Json, TemplateError> {
        match value {
            Yaml::Null => Ok(Json::Null),
            Yaml::Bool(b) => Ok(Json::Bool(*b)),
            Yaml::Number(n) => Ok(serde_json::to_value(n).unwrap_or(Json::Null)),
            Yaml::String(s) => Ok(Json::String(s.clone())),
            Yaml::Sequence(items) => Ok(Json::Array(
                items
                    .iter()
                    .map(|v| self.eval(v))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .filter(|v| !v.is_null())
                    .collect(),
            )),
            Yaml::Mapping(m) => {
                if m.len() == 1 {
                    if let Some((Yaml::String(k), v)) = m.iter().next() {
                        if k == "Ref" || k == "Condition" || k.starts_with("Fn::") {
                            let name = k.trim_start_matches("Fn::");
                            return self.intrinsic(name, v);
                        }
                    }
                }
                let mut out = Map::new();
                for (k, v) in m {
                    let key = k.as_str().ok_or_else(|| invalid("non-string key"))?;
                    let v = self.eval(v)?;
                    if !v.is_null() {
                        out.insert(key.to_owned(), v);
                    }
                }
                Ok(Json::Object(out))
            }
            Yaml::Tagged(tagged) => {
                let tag = tagged.tag.to_string();
                let name = tag.trim_start_matches('!');
                self.intrinsic(name, &tagged.value)
            }
        }
    }

    fn intrinsic(&self, name: &str, arg: &Yaml) -> Result<Json, TemplateError> {
        let text = |v: &Yaml| -> Result<String, TemplateError> {
            match self.eval(v)? {
                Json::String(s) => Ok(s),
                other => Ok(other.to_string()),
            }
        };
        match name {
            "Ref" => self.reference(arg.as_str().ok_or_else(|| invalid("Ref takes a name"))?),
            "Condition" => {
                let n = arg
                    .as_str()
                    .ok_or_else(|| invalid("Condition takes a name"))?;
                self.conditions
                    .get(n)
                    .map(|b| Json::Bool(*b))
                    .ok_or_else(|| invalid(format!("unknown condition {n}")))
            }
            "GetAtt" => {
                let (res, attr) = match arg {
                    Yaml::String(s) => s
                        .split_once('.')
                        .map(|(a, b)| (a.to_owned(), b.to_owned()))
                        .ok_or_else(|| invalid("GetAtt Resource.Attribute"))?,
                    Yaml::Sequence(v) if v.len() == 2 => (text(&v[0])?, text(&v[1])?),
                    _ => return Err(invalid("GetAtt takes Resource.Attribute")),
                };
                self.get_att(&res, &attr)
            }
            "Sub" => match arg {
                Yaml::String(s) => Ok(Json::String(self.sub(s, &Map::new())?)),
                Yaml::Sequence(v) if v.len() == 2 => {
                    let vars = match self.eval(&v[1])? {
                        Json::Object(m) => m,
                        _ => return Err(invalid("Sub variables must be a map")),
                    };
                    Ok(Json::String(self.sub(&text(&v[0])?, &vars)?))
                }
                _ => Err(invalid("Sub takes a string or [string, map]")),
            },
            "If" => match arg {
                Yaml::Sequence(v) if v.len() == 3 => {
                    let cond = v[0]
                        .as_str()
                        .ok_or_else(|| invalid("If takes a condition name"))?;
                    let holds = *self
                        .conditions
                        .get(cond)
                        .ok_or_else(|| invalid(format!("unknown condition {cond}")))?;
                    self.eval(if holds { &v[1] } else { &v[2] })
                }
                _ => Err(invalid("If takes [condition, then, else]")),
            },
            "Equals" => match arg {
                Yaml::Sequence(v) if v.len() == 2 => {
                    Ok(Json::Bool(self.eval(&v[0])? == self.eval(&v[1])?))
                }
                _ => Err(invalid("Equals takes two values")),
            },
            "Not" => match arg {
                Yaml::Sequence(v) if v.len() == 1 => Ok(Json::Bool(!self.condition(&v[0])?)),
                _ => Err(invalid("Not takes one condition")),
            },
            "And" | "Or" => match arg {
                Yaml::Sequence(v) if !v.is_empty() => {
                    let values = v
                        .iter()
                        .map(|c| self.condition(c))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Json::Bool(if name == "And" {
                        values.iter().all(|b| *b)
                    } else {
                        values.iter().any(|b| *b)
                    }))
                }
                _ => Err(invalid(format!("{name} takes a list of conditions"))),
            },
            "FindInMap" => match arg {
                Yaml::Sequence(v) if v.len() == 3 => {
                    let (map, top, second) = (text(&v[0])?, text(&v[1])?, text(&v[2])?);
                    let value = self
                        .root
                        .get("Mappings")
                        .and_then(|m| m.get(map.as_str()))
                        .and_then(|m| m.get(top.as_str()))
                        .and_then(|m| m.get(second.as_str()))
                        .ok_or_else(|| {
                            invalid(format!("FindInMap {map}.{top}.{second}: no such entry"))
                        })?;
                    self.eval(value)
                }
                _ => Err(invalid(
                    "FindInMap takes [map, top-level key, second-level key]",
                )),
            },
            "Join" => match arg {
                Yaml::Sequence(v) if v.len() == 2 => {
                    let sep = text(&v[0])?;
                    let items = match self.eval(&v[1])? {
                        Json::Array(items) => items,
                        _ => return Err(invalid("Join takes a list")),
                    };
                    let parts: Vec<String> = items
                        .into_iter()
                        .map(|i| match i {
                            Json::String(s) => s,
                            other => other.to_string(),
                        })
                        .collect();
                    Ok(Json::String(parts.join(&sep)))
                }
                _ => Err(invalid("Join takes [separator, list]")),
            },
            "Select" => match arg {
                Yaml::Sequence(v) if v.len() == 2 => {
                    let index: usize = text(&v[0])?.parse().map_err(|_| invalid("Select index"))?;
                    match self.eval(&v[1])? {
                        Json::Array(items) => items
                            .get(index)
                            .cloned()
                            .ok_or_else(|| invalid("Select index out of range")),
                        _ => Err(invalid("Select takes a list")),
                    }
                }
                _ => Err(invalid("Select takes [index, list]")),
            },
            other => Err(invalid(format!(
                "intrinsic {other} is not supported locally"
            ))),
        }
    }
}

/// The strings of an evaluated JSON list (anything else is skipped).
pub fn json_strings(value: Option<&Json>) -> Vec<String> {
    value
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// Reads `key` of an evaluated JSON object as a string (numbers rendered).
/// A number property: a JSON number, or the string a `!Ref` to a Number parameter evaluates to.
pub fn json_number<T: std::str::FromStr>(value: Option<&Json>) -> Option<T> {
    match value? {
        Json::Number(n) => n.to_string().parse().ok(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn json_str(value: &Json, key: &str) -> Option<String> {
    match value.get(key)? {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_json_or_as_parameter_strings() {
        let j = serde_json::json!({"a": 900, "b": "256", "c": "1.5", "d": true});
        assert_eq!(json_number::<u64>(j.get("a")), Some(900));
        assert_eq!(json_number::<u64>(j.get("b")), Some(256));
        assert_eq!(json_number::<f64>(j.get("c")), Some(1.5));
        assert_eq!(json_number::<u64>(j.get("c")), None);
        assert_eq!(json_number::<u64>(j.get("d")), None);
        assert_eq!(json_number::<u64>(j.get("missing")), None);
    }

    #[test]
    fn a_bucket_has_its_regional_domain_name_and_a_resource_its_id() {
        let yaml = r#"
Resources:
  B:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: b-1
  D:
    Type: AWS::CloudFront::Distribution
    Properties:
      Origin: !GetAtt B.RegionalDomainName
      Oac: !GetAtt O.Id
"#;
        let mut t = Template::parse(yaml, "st", "eu-west-3", "123", &HashMap::new()).unwrap();
        t.set_ref("B", "b-1");
        assert!(
            t.eval(t.resources()[1].properties).is_err(),
            "O has no id yet"
        );
        t.set_ref("O", "local-O");
        let props = t.eval(t.resources()[1].properties).unwrap();
        assert_eq!(props["Origin"], "b-1.s3.eu-west-3.amazonaws.com");
        assert_eq!(props["Oac"], "local-O");
    }

    const T: &str = r#"
Parameters:
  Mode: {Type: String, Default: A}
  Origins: {Type: CommaDelimitedList, Default: "x, y"}
Conditions:
  IsB: !Equals [!Ref Mode, B]
Resources:
  Q:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-q"
      Other: !If [IsB, b, !Ref AWS::NoValue]
      Arn: !GetAtt Q.Arn
      Long: {"Fn::Join": ["-", [a, !Select [1, !Ref Origins]]]}
      Literal: !Sub "${!Keep}-${Mode}"
"#;

    #[test]
    fn evaluates_the_intrinsics_the_template_uses() {
        let mut t = Template::parse(T, "st", "us-east-1", "123", &HashMap::new()).unwrap();
        t.set_arn("Q", "arn:q");
        let q = &t.resources()[0];
        let props = t.eval(q.properties).unwrap();
        assert_eq!(props["QueueName"], "st-q");
        assert!(props.get("Other").is_none());
        assert_eq!(props["Arn"], "arn:q");
        assert_eq!(props["Long"], "a-y");
        assert_eq!(props["Literal"], "${Keep}-A");
        let t = Template::parse(
            T,
            "st",
            "r",
            "1",
            &HashMap::from([("Mode".into(), "B".into())]),
        )
        .unwrap();
        let props = t.eval(t.resources()[0].properties);
        assert!(props.is_err(), "GetAtt of an unknown ARN fails loudly");
    }

    const RULES: &str = r#"
Parameters:
  Level: {Type: String, Default: info}
  Reserved: {Type: Number, Default: 0}
Mappings:
  Levels:
    info: {Lambda: INFO}
    debug: {Lambda: DEBUG}
Conditions:
  Reserve: !Not [!Equals [!Ref Reserved, "0"]]
  Both: !And [!Condition Reserve, !Equals [!Ref Level, debug]]
  Either: !Or [!Condition Reserve, !Equals [!Ref Level, debug]]
Rules:
  NotOne:
    Assertions:
      - Assert: !Not [!Equals [!Ref Reserved, "1"]]
        AssertDescription: Reserved is 0 or at least 2.
  OnlyWhenDebug:
    RuleCondition: !Equals [!Ref Level, debug]
    Assertions:
      - Assert: !Not [!Equals [!Ref Reserved, "3"]]
        AssertDescription: not 3 when debugging.
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      Level: !FindInMap [Levels, !Ref Level, Lambda]
      Both: !If [Both, yes, no]
      Either: !If [Either, yes, no]
"#;

    fn with(params: &[(&str, &str)]) -> Result<Template, TemplateError> {
        let overrides = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Template::parse(RULES, "st", "r", "1", &overrides)
    }

    #[test]
    fn mappings_and_logical_conditions() {
        let t = with(&[]).unwrap();
        let props = t.eval(t.resources()[0].properties).unwrap();
        assert_eq!(props["Level"], "INFO");
        assert_eq!(
            (props["Both"].as_str(), props["Either"].as_str()),
            (Some("no"), Some("no"))
        );
        let t = with(&[("Level", "debug"), ("Reserved", "2")]).unwrap();
        let props = t.eval(t.resources()[0].properties).unwrap();
        assert_eq!(props["Level"], "DEBUG");
        assert_eq!(
            (props["Both"].as_str(), props["Either"].as_str()),
            (Some("yes"), Some("yes"))
        );
        let t = with(&[("Level", "trace")]).unwrap();
        assert!(
            t.eval(t.resources()[0].properties).is_err(),
            "a missing entry fails loudly"
        );
    }

    #[test]
    fn rules_refuse_the_parameters_a_deployment_would_refuse() {
        let refused = with(&[("Reserved", "1")]).err().map(|e| e.to_string());
        assert_eq!(
            refused.as_deref(),
            Some("template: rule NotOne: Reserved is 0 or at least 2.")
        );
        assert!(
            with(&[("Reserved", "3")]).is_ok(),
            "the rule's condition does not hold"
        );
        assert!(with(&[("Reserved", "3"), ("Level", "debug")]).is_err());
    }
}
