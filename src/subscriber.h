/*
 * subscriber.h
 *		Whether this server is a logical replication subscriber of apikey's
 *		tables.
 */
#ifndef APIKEY_SUBSCRIBER_H
#define APIKEY_SUBSCRIBER_H

extern bool subscriber_of_keys(void);

#endif							/* APIKEY_SUBSCRIBER_H */
