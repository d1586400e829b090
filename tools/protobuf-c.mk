# Shared by the C tools' Makefiles (tools/c, tools/controller, tools/loadgen): the compiler
# settings, libprotobuf-c from pkg-config, and the rule that compiles the protobuf-c code
# committed in Sources/ToteProtoC/ in place (never copied) into $(OBJ)/pb/.
#
# Set before including: ROOT (the repository), OBJ (object folder), PROTOS (the .proto names the
# tool needs, with everything they import). Defines PROTO_INCLUDE, PROTO_SRC, CC, CFLAGS,
# PROTOBUF_C_CFLAGS, PROTOBUF_C_LIBS, PROTO_OBJS and PROTO_HEADERS.

# The including Makefile's `all` stays the default goal (the folder rule below would be first).
.DEFAULT_GOAL := all

PROTO_INCLUDE := $(ROOT)/Sources/ToteProtoC/include
PROTO_SRC := $(ROOT)/Sources/ToteProtoC/tote/v1
PROTO_HEADERS := $(wildcard $(PROTO_INCLUDE)/tote/v1/*.pb-c.h)

ifeq ($(origin CC),default)
CC := gcc
endif
CFLAGS ?= -std=c11 -Wall -Wextra -Werror -O2
PROTOBUF_C_CFLAGS := $(shell pkg-config --cflags libprotobuf-c 2>/dev/null)
PROTOBUF_C_LIBS := $(shell pkg-config --libs libprotobuf-c 2>/dev/null)
ifeq ($(strip $(PROTOBUF_C_LIBS)),)
$(error pkg-config does not know libprotobuf-c: install pkg-config and libprotobuf-c-dev)
endif

PROTO_OBJS := $(patsubst %,$(OBJ)/pb/%.pb-c.o,$(PROTOS))

$(OBJ)/pb/%.pb-c.o: $(PROTO_SRC)/%.pb-c.c $(PROTO_HEADERS) | $(OBJ)/pb
	$(CC) -I$(PROTO_INCLUDE) $(PROTOBUF_C_CFLAGS) $(CFLAGS) -c -o $@ $<

$(OBJ) $(OBJ)/pb:
	mkdir -p $@
