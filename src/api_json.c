/*-------------------------------------------------------------------------
 *
 * api_json.c
 *		  Clover's API answers and requests in JSON: the only json-c user
 *
 * What Clover's REST API sends back is small, rare and its shape matters
 * more than speed, so it is parsed with json-c into a tree and copied out:
 * the export object (answer to creating and polling an export), the text of
 * error answers, and the body of the request that creates an export.
 * Further sources of Clover's API (such as the cursor-paged /v1 lists,
 * {"object": "list", "has_more": ..., "data": [...]}) parse their
 * envelopes here too; export files never come here (see row_path.h).
 *
 * While a json-c object is held nothing may throw, or the longjmp would
 * skip its json_object_put(): the readers below copy with copy_noerr() and
 * return a constant problem, and the caller reports it after freeing.
 *
 * PostgreSQL's fmgrprotos.h declares a function json_object(), which clashes
 * with json-c's type of that name; the PostgreSQL one is renamed while its
 * headers are read, and json-c is included last.
 *
 * IDENTIFICATION
 *		  src/api_json.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "clover_export_fdw.h"
#include "json_lex.h"

#define json_object pg_json_object_function
#include "utils/builtins.h"
#undef json_object

#include <json-c/json.h>

/*
 * parse_json_c
 *		Parse a complete JSON text with json-c; NULL and *errmsg on failure
 *
 * The caller owns the result and must json_object_put() it.
 */
static struct json_object *
parse_json_c(const char *body, size_t len, char **errmsg)
{
	struct json_tokener *tok;
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t		end;

	if (len > INT_MAX)
	{
		*errmsg = pstrdup("The answer is too large.");
		return NULL;
	}
	tok = json_tokener_new_ex(64);
	if (tok == NULL)
	{
		*errmsg = pstrdup("Out of memory while parsing JSON.");
		return NULL;
	}
	obj = json_tokener_parse_ex(tok, body, (int) len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);

	if (obj == NULL || jerr != json_tokener_success)
	{
		if (obj)
			json_object_put(obj);
		*errmsg = psprintf("The answer is not valid JSON: %s.",
						   jerr == json_tokener_continue ?
						   "unexpected end of data" :
						   json_tokener_error_desc(jerr));
		return NULL;
	}
	end = jlex_ws_end((const unsigned char *) body, end, len);
	if (end != len)
	{
		json_object_put(obj);
		*errmsg = psprintf("The answer has extra data after its JSON value at byte %zu.",
						   end);
		return NULL;
	}
	return obj;
}

/*
 * valid_export_id
 *		Export ids go into request paths: only letters, digits, '-' and '_'
 */
static bool
valid_export_id(const char *id)
{
	const char *p;

	if (*id == '\0' || strlen(id) > 64)
		return false;
	for (p = id; *p; p++)
	{
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			  (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return false;
	}
	return true;
}

/*
 * copy_noerr
 *		palloc'd copy of a string that never throws: NULL when out of memory
 *
 * Used while a json-c object is held, so that nothing can longjmp past the
 * json_object_put() that frees it.
 */
static char *
copy_noerr(const char *s, size_t len)
{
	char	   *copy = MemoryContextAllocExtended(CurrentMemoryContext, len + 1,
												  MCXT_ALLOC_NO_OOM);

	if (copy)
	{
		memcpy(copy, s, len);
		copy[len] = '\0';
	}
	return copy;
}

static char *
json_string_copy(struct json_object *v)
{
	return copy_noerr(json_object_get_string(v), json_object_get_string_len(v));
}

/*
 * export_object_fields
 *		Copy what we use of an export object into *info, without throwing
 *
 * Returns NULL on success, else a constant saying what is wrong (with the
 * element number in *bad_url for URL problems).
 */
static const char *
export_object_fields(struct json_object *obj, CloverExportInfo *info,
					 size_t *bad_url)
{
	struct json_object *v,
			   *urls,
			   *elements;
	size_t		i,
				n;

	if (!json_object_is_type(obj, json_type_object))
		return "The answer is not a JSON object.";

	if (!json_object_object_get_ex(obj, "id", &v) ||
		!json_object_is_type(v, json_type_string))
		return "The export object has no \"id\" string.";
	if ((info->id = json_string_copy(v)) == NULL)
		return "Out of memory.";
	if (!valid_export_id(info->id))
		return "The export object's \"id\" contains unexpected characters.";

	if (!json_object_object_get_ex(obj, "status", &v) ||
		!json_object_is_type(v, json_type_string))
		return "The export object has no \"status\" string.";
	if ((info->status = copy_noerr(json_object_get_string(v),
								   Min(json_object_get_string_len(v), 40))) == NULL)
		return "Out of memory.";

	info->percent = -1;
	if (json_object_object_get_ex(obj, "percentComplete", &v) &&
		(json_object_is_type(v, json_type_int) ||
		 json_object_is_type(v, json_type_double)))
		info->percent = Max(0, Min(100, json_object_get_int(v)));

	info->available_until = 0;
	if (json_object_object_get_ex(obj, "availableUntil", &v) &&
		json_object_is_type(v, json_type_int))
		info->available_until = json_object_get_int64(v);

	/* what was exported, when Clover says (to check a reused export) */
	if (json_object_object_get_ex(obj, "type", &v) &&
		json_object_is_type(v, json_type_string) &&
		(info->type = copy_noerr(json_object_get_string(v),
								 Min(json_object_get_string_len(v), 40))) == NULL)
		return "Out of memory.";
	if (json_object_object_get_ex(obj, "startTime", &v) &&
		json_object_is_type(v, json_type_int) &&
		json_object_object_get_ex(obj, "endTime", &urls) &&
		json_object_is_type(urls, json_type_int))
	{
		info->has_window = true;
		info->start_ms = json_object_get_int64(v);
		info->end_ms = json_object_get_int64(urls);
	}

	info->nurls = 0;
	info->urls = NULL;
	if (!json_object_object_get_ex(obj, "exportUrls", &urls) ||
		json_object_is_type(urls, json_type_null))
		return NULL;
	if (!json_object_object_get_ex(urls, "elements", &elements) ||
		!json_object_is_type(elements, json_type_array))
		return "The export object has \"exportUrls\" without an \"elements\" array.";

	n = json_object_array_length(elements);
	info->urls = MemoryContextAllocExtended(CurrentMemoryContext,
											sizeof(char *) * (n + 1),
											MCXT_ALLOC_NO_OOM | MCXT_ALLOC_ZERO);
	if (info->urls == NULL)
		return "Out of memory.";
	for (i = 0; i < n; i++)
	{
		struct json_object *el = json_object_array_get_idx(elements, i);
		struct json_object *url;

		*bad_url = i + 1;
		if (!json_object_is_type(el, json_type_object) ||
			!json_object_object_get_ex(el, "url", &url) ||
			!json_object_is_type(url, json_type_string))
			return "An element of \"exportUrls\" has no \"url\" string.";
		if ((info->urls[i] = json_string_copy(url)) == NULL)
			return "Out of memory.";
		info->nurls++;
	}
	return NULL;
}

/*
 * CloverParseExportObject
 *		Read Clover's export object (the answer to the POST and to polls)
 *
 * On failure returns false with a palloc'd description in *errmsg; the
 * caller knows the HTTP context and reports it.
 */
bool
CloverParseExportObject(const char *body, size_t len, CloverExportInfo *info,
						char **errmsg)
{
	struct json_object *obj;
	const char *problem;
	size_t		bad_url = 0;

	memset(info, 0, sizeof(*info));
	obj = parse_json_c(body, len, errmsg);
	if (obj == NULL)
		return false;
	problem = export_object_fields(obj, info, &bad_url);
	json_object_put(obj);

	if (problem == NULL)
		return true;
	if (bad_url > 0)
		*errmsg = psprintf("%s (element %zu)", problem, bad_url);
	else
		*errmsg = pstrdup(problem);
	return false;
}

/*
 * list_page_fields
 *		Copy what we use of a /v1 list page into *page, without throwing
 *
 * Returns NULL on success, else a constant saying what is wrong (with the
 * element number in *bad_elem for an element's problem).
 */
static const char *
list_page_fields(struct json_object *obj, CloverListPage *page,
				 size_t *bad_elem)
{
	struct json_object *v,
			   *data;
	size_t		i;

	if (!json_object_is_type(obj, json_type_object))
		return "The answer is not a JSON object.";
	if (!json_object_object_get_ex(obj, "has_more", &v) ||
		!json_object_is_type(v, json_type_boolean))
		return "The list has no \"has_more\" boolean.";
	page->has_more = json_object_get_boolean(v);
	if (!json_object_object_get_ex(obj, "data", &data) ||
		!json_object_is_type(data, json_type_array))
		return "The list has no \"data\" array.";

	page->ndata = (int) Min(json_object_array_length(data), INT_MAX / 2);
	page->ids = MemoryContextAllocExtended(CurrentMemoryContext,
										   sizeof(char *) * (page->ndata + 1),
										   MCXT_ALLOC_NO_OOM | MCXT_ALLOC_ZERO);
	if (page->ids == NULL)
		return "Out of memory.";
	for (i = 0; i < (size_t) page->ndata; i++)
	{
		struct json_object *el = json_object_array_get_idx(data, i);

		*bad_elem = i + 1;
		if (!json_object_is_type(el, json_type_object))
			return "An element of \"data\" is not an object.";
		if (!json_object_object_get_ex(el, "id", &v) ||
			!json_object_is_type(v, json_type_string) ||
			json_object_get_string_len(v) == 0)
			return "An element of \"data\" has no \"id\" string.";
		if ((page->ids[i] = json_string_copy(v)) == NULL)
			return "Out of memory.";
	}
	return NULL;
}

/*
 * CloverParseListPage
 *		Read a page of an e-commerce /v1 list: {"object": "list",
 *		"has_more": bool, "data": [...]}, every element an object with an
 *		"id" string (the cursor of the next page, and what repeats are
 *		found by)
 *
 * On failure returns false with a palloc'd description in *errmsg.
 */
bool
CloverParseListPage(const char *body, size_t len, CloverListPage *page,
					char **errmsg)
{
	struct json_object *obj;
	const char *problem;
	size_t		bad_elem = 0;

	memset(page, 0, sizeof(*page));
	obj = parse_json_c(body, len, errmsg);
	if (obj == NULL)
		return false;
	problem = list_page_fields(obj, page, &bad_elem);
	json_object_put(obj);

	if (problem == NULL)
		return true;
	if (bad_elem > 0)
		*errmsg = psprintf("%s (element %zu)", problem, bad_elem);
	else
		*errmsg = pstrdup(problem);
	return false;
}

/*
 * CloverBuildExportRequest
 *		The body of the POST that creates an export, palloc'd
 *
 * Times are JSON numbers, as in Clover's C# example.
 */
char *
CloverBuildExportRequest(CloverExportType type, int64 start_ms, int64 end_ms)
{
	return psprintf("{\"type\": \"%s\", \"startTime\": " INT64_FORMAT
					", \"endTime\": " INT64_FORMAT "}",
					CloverExportTypeName(type), start_ms, end_ms);
}

/*
 * error_object_message
 *		The message of the /v1 error shape {"error": {"message": ...,
 *		"param": ...}}, with its parameter named, or NULL; never throws
 */
static char *
error_object_message(struct json_object *obj)
{
	struct json_object *err,
			   *v;
	char	   *message;
	char	   *param = NULL;
	char	   *both;

	if (!json_object_object_get_ex(obj, "error", &err) ||
		!json_object_is_type(err, json_type_object) ||
		!json_object_object_get_ex(err, "message", &v) ||
		!json_object_is_type(v, json_type_string) ||
		(message = json_string_copy(v)) == NULL)
		return NULL;
	if (json_object_object_get_ex(err, "param", &v) &&
		json_object_is_type(v, json_type_string))
		param = json_string_copy(v);
	if (param == NULL)
		return message;
	both = MemoryContextAllocExtended(CurrentMemoryContext,
									  strlen(message) + strlen(param) + 20,
									  MCXT_ALLOC_NO_OOM);
	if (both == NULL)
		return message;
	sprintf(both, "%s (parameter \"%s\")", message, param);
	return both;
}

/*
 * CloverErrorBodyMessage
 *		What an error answer says: its "message" (or "error") string if it
 *		is a JSON object, the message and parameter of the /v1 error shape,
 *		else its text; printable, at most ~maxlen bytes
 *
 * The caller redacts secrets before it cuts the text short for a message.
 */
char *
CloverErrorBodyMessage(const char *body, size_t len, size_t maxlen)
{
	static const char *const keys[] = {"message", "error", "msg", NULL};
	struct json_object *obj;
	char	   *ignore;
	char	   *message = NULL;
	int			i;

	if (len == 0)
		return pstrdup("(empty body)");

	obj = parse_json_c(body, len, &ignore);
	if (obj)
	{
		if (json_object_is_type(obj, json_type_object))
			message = error_object_message(obj);
		for (i = 0; keys[i] && message == NULL; i++)
		{
			struct json_object *v;

			if (json_object_is_type(obj, json_type_object) &&
				json_object_object_get_ex(obj, keys[i], &v) &&
				json_object_is_type(v, json_type_string))
				message = json_string_copy(v);
		}
		json_object_put(obj);
	}
	if (message)
		return jlex_printable(message, strlen(message), maxlen);
	return jlex_printable(body, len, maxlen);
}
