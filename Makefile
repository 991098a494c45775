# apikey: PGXS build.  `make && make install`; tests: bash test/run.sh
EXTENSION = apikey
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = apikey
OBJS = src/apikey.o src/authz.o src/keytext.o src/keyid.o src/keyhash.o src/keygen.o \
	src/scopes.o src/validate.o src/verify.o src/identity.o src/usage.o src/keycache.o src/keychange.o \
	src/actor.o src/delegation.o src/imported.o src/killswitch.o src/leak.o src/events.o src/ratelimit.o src/credits.o \
	src/subscriber.o src/replica.o src/relay.o src/xactstack.o src/createkey.o \
	src/keylimits.o

# The install script is the readable sources, in dependency order.
SQL_SOURCES = sql/apikey/types.sql sql/apikey/verify.sql sql/apikey/tenants.sql \
	sql/apikey/keys.sql \
	sql/apikey/usage.sql sql/apikey/richkeys.sql sql/apikey/vendor.sql sql/apikey/members.sql sql/apikey/incidents.sql sql/apikey/replication.sql \
	sql/apikey/views.sql sql/apikey/privileges.sql
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
# Released versions' frozen install scripts and the upgrade scripts between them
DATA = $(filter-out $(DATA_built), $(wildcard sql/$(EXTENSION)--*.sql))
EXTRA_CLEAN = sql/$(EXTENSION)--$(EXTVERSION).sql
# The manual: README.md and the pages it links to in doc/ (see below)
DOCS = README.md

# -Wextra for our code; the server's own headers are treated as system headers.
# (fmgr's PG_FUNCTION_ARGS makes unused parameters unavoidable.)
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter
PG_CPPFLAGS = -isystem $(shell $(PG_CONFIG) --includedir-server)
# SHA-256 from OpenSSL, the library the server's own cryptohash uses
SHLIB_LINK = -lcrypto

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS installs DOCS flat into $(docdir)/extension/, a directory every
# extension shares.  The manual goes into a directory of its own there,
# $(docdir)/extension/apikey/, README.md beside doc/ with its pages, so that
# their links between each other still lead somewhere.
docmoduledir := extension/$(EXTENSION)
DOC_PAGES = $(wildcard doc/*.md)
.PHONY: install-doc-pages uninstall-doc-pages
install: install-doc-pages
install-doc-pages: installdirs
	$(MKDIR_P) '$(DESTDIR)$(docdir)/$(docmoduledir)/doc'
	$(INSTALL_DATA) $(addprefix $(srcdir)/, $(DOC_PAGES)) '$(DESTDIR)$(docdir)/$(docmoduledir)/doc/'
uninstall: uninstall-doc-pages
uninstall-doc-pages:
	rm -f $(addprefix '$(DESTDIR)$(docdir)/$(docmoduledir)'/, $(DOCS) $(DOC_PAGES))
	-rmdir '$(DESTDIR)$(docdir)/$(docmoduledir)/doc' '$(DESTDIR)$(docdir)/$(docmoduledir)'

# Every object is rebuilt when any of the project's headers changes (PGXS
# tracks header dependencies only in servers configured with --enable-depend)
$(OBJS): $(wildcard src/*.h)

# The benchmark (test/bench/bench.sh): apikey beside keys written by hand,
# on a throwaway cluster of this PostgreSQL.  make bench [BENCH_OPTS=--quick]
.PHONY: bench
bench:
	PGBIN="$${PGBIN:-$(shell $(PG_CONFIG) --bindir)}" bash test/bench/bench.sh $(BENCH_OPTS)

# The release archive for PGXN, $(DIST_DIR)/apikey-<version>.zip: the files
# of the last commit (git archive), so nothing built or left by a test run.
DIST_DIR ?= dist
.PHONY: dist
dist:
	@git diff --quiet HEAD -- || echo "make dist: uncommitted changes are not in the archive" >&2
	mkdir -p $(DIST_DIR)
	git archive --format zip --prefix=$(EXTENSION)-$(EXTVERSION)/ \
		--output $(DIST_DIR)/$(EXTENSION)-$(EXTVERSION).zip HEAD

sql/$(EXTENSION)--$(EXTVERSION).sql: $(SQL_SOURCES) $(EXTENSION).control
	{ printf '%s\n' "-- apikey $(EXTVERSION): generated from sql/apikey/*.sql by make; edit those." \
	    '\echo Use "CREATE EXTENSION apikey" to load this file. \quit'; \
	  for f in $(SQL_SOURCES); do printf '\n-- %s\n' "$$f"; cat "$$f"; done; } > $@
