/*-------------------------------------------------------------------------
 *
 * service_hours.c
 *		  Clover's export service hours: parsing, checking, next opening
 *
 * Clover accepts export requests only during published hours (UTC), and
 * answers 503 outside them.  The hours have changed over the years, so they
 * are data, not code: each region has a default taken from Clover's
 * documents (options.c), and the server option service_hours replaces it.
 *
 * The format is "always", or a comma-separated list of "DAYS HH:MM-HH:MM"
 * where DAYS is one weekday (MON .. SUN) or a range of them ("MON-FRI",
 * "FRI-MON" wraps).  Times are UTC, the end is exclusive and may be 24:00;
 * a period may not cross midnight (write two).  Everything here is pure
 * computation on TimestampTz (see clover_core.h), used both by the
 * validator and by the client deciding whether a 503 means "closed" or
 * "busy".
 *
 * IDENTIFICATION
 *		  src/service_hours.c
 *-------------------------------------------------------------------------
 */
#ifndef FRONTEND
#include "postgres.h"
#else
#include "postgres_fe.h"
#endif

#include <ctype.h>

#include "clover_core.h"

#define MINUTES_PER_DAY		1440

static const char *const weekday_names[7] = {
	"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"
};

static const char *parse_weekday(const char *p, int *weekday);
static const char *parse_clock(const char *p, int *minutes);
static void split_time(TimestampTz t, int64 *day, int *weekday, int64 *usec);

static const char *
skip_space(const char *p)
{
	while (isspace((unsigned char) *p))
		p++;
	return p;
}

/*
 * parse_weekday
 *		Parse a three-letter weekday; returns the position after it, or NULL
 */
static const char *
parse_weekday(const char *p, int *weekday)
{
	int			i;

	for (i = 0; i < 7; i++)
	{
		if (pg_strncasecmp(p, weekday_names[i], 3) == 0 &&
			!isalpha((unsigned char) p[3]))
		{
			*weekday = i;
			return p + 3;
		}
	}
	return NULL;
}

/*
 * parse_clock
 *		Parse "HH:MM" (00:00 .. 24:00) into minutes; NULL if malformed
 */
static const char *
parse_clock(const char *p, int *minutes)
{
	int			h,
				m;

	if (!isdigit((unsigned char) p[0]) || !isdigit((unsigned char) p[1]) ||
		p[2] != ':' ||
		!isdigit((unsigned char) p[3]) || !isdigit((unsigned char) p[4]))
		return NULL;
	h = (p[0] - '0') * 10 + (p[1] - '0');
	m = (p[3] - '0') * 10 + (p[4] - '0');
	if (m > 59 || h > 24 || (h == 24 && m != 0))
		return NULL;
	*minutes = h * 60 + m;
	return p + 5;
}

/*
 * CloverParseServiceHours
 *		Parse a service_hours value; on failure return false with a
 *		palloc'd description in *errmsg
 */
bool
CloverParseServiceHours(const char *spec, CloverServiceHours *out,
						char **errmsg)
{
	const char *p = skip_space(spec);

	memset(out, 0, sizeof(*out));
	if (strlen(spec) >= sizeof(out->spec))
	{
		*errmsg = psprintf("The list is longer than %d characters.",
						   (int) sizeof(out->spec) - 1);
		return false;
	}
	strlcpy(out->spec, p, sizeof(out->spec));

	if (pg_strncasecmp(p, "always", 6) == 0 && *skip_space(p + 6) == '\0')
	{
		out->always = true;
		return true;
	}

	for (;;)
	{
		int			first,
					last,
					start,
					end,
					d;
		const char *item = p;

		if ((p = parse_weekday(p, &first)) == NULL)
		{
			*errmsg = psprintf("Expected a weekday (MON .. SUN) at \"%s\".", item);
			return false;
		}
		last = first;
		if (*p == '-' && (p = parse_weekday(p + 1, &last)) == NULL)
		{
			*errmsg = psprintf("Expected a weekday range such as MON-FRI at \"%s\".",
							   item);
			return false;
		}
		p = skip_space(p);
		if ((p = parse_clock(p, &start)) == NULL || *p != '-' ||
			(p = parse_clock(p + 1, &end)) == NULL)
		{
			*errmsg = psprintf("Expected hours such as 10:00-15:00 in \"%s\".", item);
			return false;
		}
		if (end <= start)
		{
			*errmsg = psprintf("The period in \"%s\" ends before it starts; a period may not cross midnight.",
							   item);
			return false;
		}

		/* one range per weekday covered, wrapping FRI-MON */
		for (d = first;; d = (d + 1) % 7)
		{
			if (out->nranges >= CLOVER_MAX_HOUR_RANGES)
			{
				*errmsg = psprintf("More than %d periods.", CLOVER_MAX_HOUR_RANGES);
				return false;
			}
			out->ranges[out->nranges].weekday = d;
			out->ranges[out->nranges].start_min = start;
			out->ranges[out->nranges].end_min = end;
			out->nranges++;
			if (d == last)
				break;
		}

		p = skip_space(p);
		if (*p == '\0')
			break;
		if (*p != ',')
		{
			*errmsg = psprintf("Expected a comma or the end at \"%s\".", p);
			return false;
		}
		p = skip_space(p + 1);
	}
	return true;
}

/*
 * split_time
 *		UTC day number (days since 2000-01-01), weekday and time of day
 */
static void
split_time(TimestampTz t, int64 *day, int *weekday, int64 *usec)
{
	int64		d = t / USECS_PER_DAY;

	if (t % USECS_PER_DAY < 0)
		d--;
	*day = d;
	*usec = t - d * USECS_PER_DAY;
	/* 2000-01-01 was a Saturday */
	*weekday = (int) (((d + 6) % 7 + 7) % 7);
}

/*
 * CloverServiceOpenAt
 *		Does Clover accept exports at time t?
 */
bool
CloverServiceOpenAt(const CloverServiceHours *hours, TimestampTz t)
{
	int64		day,
				usec;
	int			weekday,
				i;

	if (hours->always)
		return true;
	split_time(t, &day, &weekday, &usec);
	for (i = 0; i < hours->nranges; i++)
	{
		const CloverHourRange *r = &hours->ranges[i];

		if (r->weekday == weekday &&
			usec >= (int64) r->start_min * USECS_PER_MINUTE &&
			usec < (int64) r->end_min * USECS_PER_MINUTE)
			return true;
	}
	return false;
}

/*
 * CloverNextOpening
 *		The first time at or after t when Clover accepts exports;
 *		DT_NOEND if the calendar has no open period at all
 */
TimestampTz
CloverNextOpening(const CloverServiceHours *hours, TimestampTz t)
{
	int64		day,
				usec;
	int			weekday,
				offset;

	if (CloverServiceOpenAt(hours, t))
		return t;
	split_time(t, &day, &weekday, &usec);

	/* a week and a day covers every weekday after today's remainder */
	for (offset = 0; offset <= 7; offset++)
	{
		int			wd = (weekday + offset) % 7;
		int64		best = -1;
		int			i;

		for (i = 0; i < hours->nranges; i++)
		{
			const CloverHourRange *r = &hours->ranges[i];
			int64		start = (int64) r->start_min * USECS_PER_MINUTE;

			if (r->weekday != wd || (offset == 0 && start <= usec))
				continue;
			if (best < 0 || start < best)
				best = start;
		}
		if (best >= 0)
			return (day + offset) * USECS_PER_DAY + best;
	}
	return DT_NOEND;
}

/*
 * CloverFormatServiceHours
 *		The hours as the user (or the region default) wrote them
 */
const char *
CloverFormatServiceHours(const CloverServiceHours *hours)
{
	return hours->spec;
}
