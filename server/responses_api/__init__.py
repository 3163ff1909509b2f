"""OpenAI's Responses API: its wire objects, how a request becomes a chat generation, the output items and
stream events of the answer, and the stored responses that `previous_response_id` continues."""
