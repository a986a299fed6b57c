"""The execution role of every function of a SAM template, as `sam deploy` would create it.

    .venv/bin/python local-stack/sam_roles.py template.yaml

SAM's own translator (samtranslator, which cfn-lint ships) turns the template into plain
CloudFormation: each AWS::Serverless::Function gets an AWS::IAM::Role whose inline policies are its
`Policies` with the SAM policy templates expanded (DynamoDBCrudPolicy → its actions and ARNs), and
whose managed policies include what its events need (AWSLambdaSQSQueueExecutionRole for an SQS
event). Prints, as JSON, for each function's logical id: {"policies": [...], "managed": [...]}, with
the intrinsics (Ref, Fn::Sub, Fn::If ...) left for the local stack to evaluate with its parameters.
"""

import json
import logging
import sys

from cfnlint.decode import decode
from cfnlint.template.transforms._sam import Transform


def main(path):
    logging.disable(logging.CRITICAL)
    template, problems = decode(path)
    if problems:
        sys.exit(f"{path}: cannot read the template: {problems}")
    transform = Transform(path, template, "us-east-1")
    problems = transform.transform_template()
    if problems:
        sys.exit(f"{path}: SAM cannot translate the template: {problems}")
    resources = transform.template()["Resources"]
    roles = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        role = resource.get("Properties", {}).get("Role", {})
        target = role.get("Fn::GetAtt", [None])[0] if isinstance(role, dict) else None
        properties = resources.get(target, {}).get("Properties", {}) if target else {}
        roles[logical_id] = {
            "policies": properties.get("Policies", []),
            "managed": properties.get("ManagedPolicyArns", []),
        }
    json.dump(roles, sys.stdout, default=str)


if __name__ == "__main__":
    main(sys.argv[1])
