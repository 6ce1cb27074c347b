"""Running on AWS Lambda: the handler (Mangum over the same ASGI app) and what API Gateway says about callers."""
