"""OpenAI's Responses API: its wire objects, how a request becomes a chat generation, a response's lifecycle with
its output items and stream events, and the stored responses that `previous_response_id` continues."""
