/*
 * tote-purchase: a storefront purchase over the wire, as a storefront BFF written in C would make
 * it: a cart with the given SKUs, checkout (shipping and billing address, shipping option, card),
 * the order placed, and its payment authorized with the simulated card gateway.
 *
 *   tote-purchase [--host H] [--port P | --server H:P] [--key KEY | --api-key KEY] [--timeout-ms N]
 *                 --sku SKU:QTY [--sku SKU:QTY ...] [--currency EUR] [--customer ID]
 *                 [--shipping OPTION] [--card TOKEN] [--idempotency-key PREFIX]
 *
 * Prints the order id on stdout (its number, total and payment state go to stderr). Every
 * command carries the idempotency key PREFIX-<step> (PREFIX: random unless given), so a step
 * retried with the same --idempotency-key never acts twice (a cart is created once, an order
 * placed once).
 * Exit: 0 paid (AUTHORIZED or CAPTURED), 1 placed but the payment is not (declined, 3-D Secure
 * needed: the order id is still printed), 2 a call failed (stderr: "error: CODE: message (in
 * METHOD)"), 3 connection failure, 64 usage.
 */
#define _POSIX_C_SOURCE 200809L

#include "cli_common.h"
#include "tote_client.h"

#include "tote/v1/cart.pb-c.h"
#include "tote/v1/checkout.pb-c.h"
#include "tote/v1/payment.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINES 32

static void usage(FILE *out) {
    fprintf(out,
            "usage: tote-purchase [--host H] [--port P | --server H:P] [--key KEY | --api-key KEY] [--timeout-ms N]\n"
            "                     --sku SKU:QTY [--sku SKU:QTY ...] [--currency CUR] [--customer ID]\n"
            "                     [--shipping OPTION] [--card TOKEN] [--idempotency-key PREFIX]\n"
            "  --host H, --port P  server (default 127.0.0.1:7700); --server H:P sets both\n"
            "  --key KEY           storefront API key (default: $TOTE_API_KEY); --api-key is the same\n"
            "  --timeout-ms N      connect timeout and deadline of each call in ms (default 5000; 0 = none)\n"
            "  --sku SKU:QTY       a cart line (repeatable, at least one; QTY 1 to 1000)\n"
            "  --currency CUR      the cart's currency (default EUR)\n"
            "  --customer ID       the customer (default c-client)\n"
            "  --shipping OPTION   shipping option id (default standard)\n"
            "  --card TOKEN        simulated card token (default tok_visa_4242: authorizes at once)\n"
            "  --idempotency-key P prefix of every command's idempotency key, PREFIX-<step>\n"
            "                      (default: random; 1 to 150 characters)\n"
            "exit: 0 paid, 1 placed but not paid, 2 call failed, 3 connection failure, 64 usage\n");
}

/* One purchase: the connection, the options every call needs, and the key prefix. */
typedef struct {
    tote_conn *conn;
    int timeout_ms;
    const char *key_prefix;
    int exit_code; /* of the first failed call */
} purchase;

static const char *payment_state_name(int state) {
    switch (state) {
    case TOTE__V1__PAYMENT_STATE__PAYMENT_STATE_PENDING: return "PENDING";
    case TOTE__V1__PAYMENT_STATE__PAYMENT_STATE_REQUIRES_ACTION: return "REQUIRES_ACTION";
    case TOTE__V1__PAYMENT_STATE__PAYMENT_STATE_AUTHORIZED: return "AUTHORIZED";
    case TOTE__V1__PAYMENT_STATE__PAYMENT_STATE_CAPTURED: return "CAPTURED";
    case TOTE__V1__PAYMENT_STATE__PAYMENT_STATE_FAILED: return "FAILED";
    case TOTE__V1__PAYMENT_STATE__PAYMENT_STATE_VOIDED: return "VOIDED";
    case TOTE__V1__PAYMENT_STATE__PAYMENT_STATE_EXPIRED: return "EXPIRED";
    default: return "OTHER";
    }
}

/* Sends `request` to `method` as a command with idempotency key "<prefix>-<step>" and decodes the
 * reply with `reply_type`. Returns the reply (free it with protobuf_c_message_free_unpacked), or
 * NULL after printing "error: CODE: message (in METHOD)" and setting p->exit_code. */
static ProtobufCMessage *command(purchase *p, const char *method, const char *step, const ProtobufCMessage *request,
                                 const ProtobufCMessageDescriptor *reply_type) {
    char key[256];
    snprintf(key, sizeof key, "%s-%s", p->key_prefix, step);
    size_t len = protobuf_c_message_get_packed_size(request);
    uint8_t *bytes = malloc(len ? len : 1);
    if (!bytes) {
        fprintf(stderr, "error: RESOURCE_EXHAUSTED: out of memory (in %s)\n", method);
        p->exit_code = EXIT_RPC_ERROR;
        return NULL;
    }
    protobuf_c_message_pack(request, bytes);
    uint8_t *response = NULL;
    size_t response_len = 0;
    tote_status status;
    int code = tote_unary_idempotent(p->conn, method, key, bytes, len, p->timeout_ms, &response, &response_len, &status);
    free(bytes);
    if (code != TOTE_OK) {
        fprintf(stderr, "error: %s: %s (in %s)\n", tote_status_code_name(code), status.message, method);
        p->exit_code = tote_conn_failed(p->conn) ? EXIT_CONNECTION : EXIT_RPC_ERROR;
        return NULL;
    }
    ProtobufCMessage *reply = protobuf_c_message_unpack(reply_type, NULL, response_len, response);
    free(response);
    if (!reply) {
        fprintf(stderr, "error: INTERNAL: the server's %s could not be decoded (in %s)\n", reply_type->name, method);
        p->exit_code = EXIT_RPC_ERROR;
    }
    return reply;
}

/* Calls a checkout step whose reply the tool does not need. Returns 0 or -1 (message printed). */
static int step(purchase *p, const char *method, const char *name, const ProtobufCMessage *request,
                const ProtobufCMessageDescriptor *reply_type) {
    ProtobufCMessage *reply = command(p, method, name, request, reply_type);
    if (!reply) return -1;
    protobuf_c_message_free_unpacked(reply, NULL);
    return 0;
}

/* Parses "SKU:QTY" (the last ':' separates; SKU not empty, QTY 1 to 1000). The SKU part is
 * cut in place. Returns 0 on success. */
static int parse_line(char *text, char **sku, uint32_t *quantity) {
    char *colon = strrchr(text, ':');
    long n;
    if (!colon || colon == text || cli_parse_int(colon + 1, 1, 1000, &n) != 0) return -1;
    *colon = '\0';
    *sku = text;
    *quantity = (uint32_t)n;
    return 0;
}

/* "HOST:PORT" (or "[v6]:PORT") into the connection options; host copied into `host_buffer`. */
static int parse_server(const char *text, cli_connection_options *opt, char *host_buffer, size_t size) {
    const char *colon = strrchr(text, ':');
    long port;
    if (!colon || colon == text || (size_t)(colon - text) >= size || cli_parse_int(colon + 1, 1, 65535, &port) != 0)
        return -1;
    const char *host = text;
    size_t host_len = (size_t)(colon - text);
    if (host[0] == '[' && host_len > 2 && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    }
    memcpy(host_buffer, host, host_len);
    host_buffer[host_len] = '\0';
    opt->host = host_buffer;
    opt->port = (int)port;
    return 0;
}

/* 32 hex digits from /dev/urandom into `out` (33 bytes); -1 if it cannot be read. */
static int random_key(char *out) {
    unsigned char raw[16];
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f) return -1;
    size_t got = fread(raw, 1, sizeof raw, f);
    fclose(f);
    if (got != sizeof raw) return -1;
    for (size_t i = 0; i < sizeof raw; i++) snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

int main(int argc, char **argv) {
    cli_connection_options opt;
    cli_defaults(&opt);
    char host_buffer[256];
    char *skus[MAX_LINES];
    uint32_t quantities[MAX_LINES];
    size_t lines = 0;
    const char *currency = "EUR", *customer = "c-client", *shipping = "standard", *card = "tok_visa_4242";
    const char *key_prefix = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_connection_option(argc, argv, &i, &opt);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        const char *arg = argv[i];
        const char *v;
        if (cli_is(arg, "--sku")) {
            if (!(v = cli_value(argc, argv, &i, "--sku"))) return EXIT_USAGE;
            if (lines == MAX_LINES) {
                fprintf(stderr, "error: at most %d --sku lines\n", MAX_LINES);
                return EXIT_USAGE;
            }
            if (parse_line((char *)v, &skus[lines], &quantities[lines]) != 0) {
                fprintf(stderr, "error: --sku wants SKU:QTY with QTY from 1 to 1000, not '%s'\n", v);
                return EXIT_USAGE;
            }
            lines++;
        } else if (cli_is(arg, "--server")) {
            if (!(v = cli_value(argc, argv, &i, "--server"))) return EXIT_USAGE;
            if (parse_server(v, &opt, host_buffer, sizeof host_buffer) != 0) {
                fprintf(stderr, "error: --server wants HOST:PORT, not '%s'\n", v);
                return EXIT_USAGE;
            }
        } else if (cli_is(arg, "--api-key")) {
            if (!(opt.key = cli_value(argc, argv, &i, "--api-key"))) return EXIT_USAGE;
        } else if (cli_is(arg, "--currency")) {
            if (!(currency = cli_value(argc, argv, &i, "--currency"))) return EXIT_USAGE;
        } else if (cli_is(arg, "--customer")) {
            if (!(customer = cli_value(argc, argv, &i, "--customer"))) return EXIT_USAGE;
        } else if (cli_is(arg, "--shipping")) {
            if (!(shipping = cli_value(argc, argv, &i, "--shipping"))) return EXIT_USAGE;
        } else if (cli_is(arg, "--card")) {
            if (!(card = cli_value(argc, argv, &i, "--card"))) return EXIT_USAGE;
        } else if (cli_is(arg, "--idempotency-key")) {
            if (!(key_prefix = cli_value(argc, argv, &i, "--idempotency-key"))) return EXIT_USAGE;
            if (!*key_prefix || strlen(key_prefix) > 150) {
                fprintf(stderr, "error: --idempotency-key must be 1 to 150 characters\n");
                return EXIT_USAGE;
            }
        } else if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "error: unexpected argument '%s'\n", arg);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (lines == 0) {
        fprintf(stderr, "error: give at least one --sku SKU:QTY\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (cli_resolve_key(&opt) != 0) return EXIT_USAGE;
    char random_prefix[33];
    if (!key_prefix) {
        if (random_key(random_prefix) != 0) {
            fprintf(stderr, "error: cannot read /dev/urandom for an idempotency key; pass --idempotency-key\n");
            return EXIT_USAGE;
        }
        key_prefix = random_prefix;
    }

    char err[TOTE_ERRBUF_SIZE];
    purchase p = {.conn = NULL, .timeout_ms = opt.timeout_ms, .key_prefix = key_prefix, .exit_code = 0};
    if (tote_connect(opt.host, opt.port, opt.key, opt.timeout_ms, &p.conn, err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return EXIT_CONNECTION;
    }

    char *cart_id = NULL, *checkout_id = NULL, *order_id = NULL;
    int exit_code = EXIT_RPC_ERROR;

    /* The cart and its lines. */
    Tote__V1__CreateCartRequest create = TOTE__V1__CREATE_CART_REQUEST__INIT;
    create.customer_id = (char *)customer;
    create.currency = (char *)currency;
    Tote__V1__CreateCartResponse *cart = (Tote__V1__CreateCartResponse *)command(
        &p, "tote.v1.Cart/CreateCart", "cart", &create.base, &tote__v1__create_cart_response__descriptor);
    if (!cart) goto done;
    if (cart->cart) cart_id = strdup(cart->cart->cart_id);
    tote__v1__create_cart_response__free_unpacked(cart, NULL);
    if (!cart_id || !*cart_id) {
        fprintf(stderr, "error: INTERNAL: CreateCart answered without a cart id\n");
        goto done;
    }
    for (size_t i = 0; i < lines; i++) {
        Tote__V1__AddLineRequest add = TOTE__V1__ADD_LINE_REQUEST__INIT;
        add.cart_id = cart_id;
        add.sku = skus[i];
        add.quantity = quantities[i];
        char name[32];
        snprintf(name, sizeof name, "line-%zu", i + 1);
        if (step(&p, "tote.v1.Cart/AddLine", name, &add.base, &tote__v1__add_line_response__descriptor) != 0) goto done;
    }

    /* Checkout: addresses, shipping, card. */
    Tote__V1__StartCheckoutRequest start = TOTE__V1__START_CHECKOUT_REQUEST__INIT;
    start.cart_id = cart_id;
    Tote__V1__StartCheckoutResponse *checkout = (Tote__V1__StartCheckoutResponse *)command(
        &p, "tote.v1.Checkout/StartCheckout", "checkout", &start.base, &tote__v1__start_checkout_response__descriptor);
    if (!checkout) goto done;
    if (checkout->checkout) checkout_id = strdup(checkout->checkout->checkout_id);
    tote__v1__start_checkout_response__free_unpacked(checkout, NULL);
    if (!checkout_id || !*checkout_id) {
        fprintf(stderr, "error: INTERNAL: StartCheckout answered without a checkout id\n");
        goto done;
    }
    char *street[] = {"Heidestraße 17"};
    Tote__V1__Address address = TOTE__V1__ADDRESS__INIT;
    address.name = "Erika Mustermann";
    address.n_lines = 1;
    address.lines = street;
    address.city = "Köln";
    address.postal_code = "51147";
    address.country = "DE";
    address.email = "erika@example.com";
    Tote__V1__SetShippingAddressRequest ship_to = TOTE__V1__SET_SHIPPING_ADDRESS_REQUEST__INIT;
    ship_to.checkout_id = checkout_id;
    ship_to.address = &address;
    if (step(&p, "tote.v1.Checkout/SetShippingAddress", "shipping-address", &ship_to.base,
             &tote__v1__set_shipping_address_response__descriptor) != 0)
        goto done;
    Tote__V1__SetBillingAddressRequest bill_to = TOTE__V1__SET_BILLING_ADDRESS_REQUEST__INIT;
    bill_to.checkout_id = checkout_id;
    bill_to.same_as_shipping = 1;
    if (step(&p, "tote.v1.Checkout/SetBillingAddress", "billing-address", &bill_to.base,
             &tote__v1__set_billing_address_response__descriptor) != 0)
        goto done;
    Tote__V1__ChooseShippingOptionRequest option = TOTE__V1__CHOOSE_SHIPPING_OPTION_REQUEST__INIT;
    option.checkout_id = checkout_id;
    option.option_id = (char *)shipping;
    if (step(&p, "tote.v1.Checkout/ChooseShippingOption", "shipping-option", &option.base,
             &tote__v1__choose_shipping_option_response__descriptor) != 0)
        goto done;
    char display[64];
    size_t card_len = strlen(card);
    snprintf(display, sizeof display, "Visa **** %s", card_len > 4 ? card + card_len - 4 : card);
    Tote__V1__PaymentMethod method = TOTE__V1__PAYMENT_METHOD__INIT;
    method.kind = TOTE__V1__PAYMENT_METHOD_KIND__PAYMENT_METHOD_KIND_CARD;
    method.provider = "simulated";
    method.token = (char *)card;
    method.display = display;
    Tote__V1__ChoosePaymentMethodRequest pay_with = TOTE__V1__CHOOSE_PAYMENT_METHOD_REQUEST__INIT;
    pay_with.checkout_id = checkout_id;
    pay_with.method = &method;
    if (step(&p, "tote.v1.Checkout/ChoosePaymentMethod", "payment-method", &pay_with.base,
             &tote__v1__choose_payment_method_response__descriptor) != 0)
        goto done;

    /* The order, and its payment. */
    Tote__V1__PlaceOrderRequest place = TOTE__V1__PLACE_ORDER_REQUEST__INIT;
    place.checkout_id = checkout_id;
    Tote__V1__PlaceOrderResponse *placed = (Tote__V1__PlaceOrderResponse *)command(
        &p, "tote.v1.Checkout/PlaceOrder", "place-order", &place.base, &tote__v1__place_order_response__descriptor);
    if (!placed) goto done;
    order_id = strdup(placed->order_id);
    if (order_id && *order_id) {
        fprintf(stderr, "placed order %s", placed->order_number);
        if (placed->total) fprintf(stderr, " for %s %lld (minor units)", placed->total->currency, (long long)placed->total->minor_units);
        fputc('\n', stderr);
    }
    tote__v1__place_order_response__free_unpacked(placed, NULL);
    if (!order_id || !*order_id) {
        fprintf(stderr, "error: INTERNAL: PlaceOrder answered without an order id\n");
        goto done;
    }
    printf("%s\n", order_id);
    fflush(stdout);
    Tote__V1__AuthorizePaymentRequest authorize = TOTE__V1__AUTHORIZE_PAYMENT_REQUEST__INIT;
    authorize.order_id = order_id;
    Tote__V1__AuthorizePaymentResponse *payment = (Tote__V1__AuthorizePaymentResponse *)command(
        &p, "tote.v1.Payments/AuthorizePayment", "authorize", &authorize.base,
        &tote__v1__authorize_payment_response__descriptor);
    if (!payment) goto done;
    int paid = payment->state == TOTE__V1__PAYMENT_STATE__PAYMENT_STATE_AUTHORIZED ||
               payment->state == TOTE__V1__PAYMENT_STATE__PAYMENT_STATE_CAPTURED;
    fprintf(stderr, "payment %s %s%s%s\n", payment->payment_id, payment_state_name((int)payment->state),
            *payment->failure_code ? " " : "", payment->failure_code);
    tote__v1__authorize_payment_response__free_unpacked(payment, NULL);
    exit_code = paid ? 0 : EXIT_NOT_GOOD;

done:
    if (exit_code == EXIT_RPC_ERROR && p.exit_code) exit_code = p.exit_code;
    free(cart_id);
    free(checkout_id);
    free(order_id);
    tote_close(p.conn);
    return exit_code;
}
