"""Mirror of `restate.aws_lambda`: serve the app as an AWS Lambda function."""

from perdure.sdk.aws_lambda import (  # noqa: F401
    LambdaEventError,
    LambdaHandler,
    handler,
    is_running_on_lambda,
    wrap_asgi_as_lambda_handler,
)
